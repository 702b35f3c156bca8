// Package spool holds one message's content while smtpd receives it: in
// memory up to a bound, then in a temporary file, so that a large message
// neither exhausts memory nor keeps a database transaction open while the
// client is still sending.
package spool

import (
	"bytes"
	"io"
	"os"
)

// Buffer collects content. It is not safe for concurrent use.
type Buffer struct {
	mem   bytes.Buffer
	limit int64
	dir   string
	file  *os.File
	size  int64
}

// New returns a Buffer that keeps up to memLimit bytes in memory and then
// moves everything to a temporary file in dir ("" = os.TempDir()).
func New(memLimit int64, dir string) *Buffer {
	return &Buffer{limit: memLimit, dir: dir}
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	if b.file == nil && b.size+int64(len(p)) > b.limit {
		f, err := os.CreateTemp(b.dir, "sqlmta-spool-")
		if err != nil {
			return 0, err
		}
		b.file = f
		if _, err := f.Write(b.mem.Bytes()); err != nil {
			return 0, err
		}
		b.mem = bytes.Buffer{}
	}
	var n int
	var err error
	if b.file != nil {
		n, err = b.file.Write(p)
	} else {
		n, err = b.mem.Write(p)
	}
	b.size += int64(n)
	return n, err
}

// Size is the number of bytes written so far.
func (b *Buffer) Size() int64 { return b.size }

// InMemory reports whether the content has stayed in memory.
func (b *Buffer) InMemory() bool { return b.file == nil }

// Reader returns a reader over the whole content from its start. Each call
// returns an independent reader; writing after Reader is not supported.
func (b *Buffer) Reader() io.Reader {
	if b.file != nil {
		return io.NewSectionReader(b.file, 0, b.size)
	}
	return bytes.NewReader(b.mem.Bytes())
}

// Close releases the memory and removes the temporary file, if any.
func (b *Buffer) Close() error {
	b.mem = bytes.Buffer{}
	if b.file == nil {
		return nil
	}
	name := b.file.Name()
	err := b.file.Close()
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	b.file = nil
	return err
}
