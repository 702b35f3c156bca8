package spool

import (
	"bytes"
	"io"
	"os"
	"testing"
)

func TestBufferStaysInMemoryUnderLimit(t *testing.T) {
	b := New(100, t.TempDir())
	defer b.Close()
	b.Write([]byte("hello "))
	b.Write([]byte("world"))
	if !b.InMemory() || b.Size() != 11 {
		t.Fatalf("InMemory=%v Size=%d", b.InMemory(), b.Size())
	}
	got, _ := io.ReadAll(b.Reader())
	if string(got) != "hello world" {
		t.Fatalf("got %q", got)
	}
}

func TestBufferSpillsToFileAndCloseRemovesIt(t *testing.T) {
	dir := t.TempDir()
	b := New(10, dir)
	want := bytes.Repeat([]byte("0123456789abcdef\r\n"), 1000)
	for i := 0; i < len(want); i += 7 {
		end := min(i+7, len(want))
		if _, err := b.Write(want[i:end]); err != nil {
			t.Fatal(err)
		}
	}
	if b.InMemory() {
		t.Fatal("still in memory")
	}
	if b.Size() != int64(len(want)) {
		t.Fatalf("Size=%d want %d", b.Size(), len(want))
	}
	for i := 0; i < 2; i++ { // readers are independent
		got, err := io.ReadAll(b.Reader())
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes, err %v", len(got), err)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("want 1 temp file, have %d", len(ents))
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ = os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("temp file left behind: %v", ents)
	}
}
