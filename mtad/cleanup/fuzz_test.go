package cleanup

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

func FuzzReadHeader(f *testing.F) {
	for _, s := range []string{
		"From: a@b\r\nDate: x\r\nMessage-ID: <1@b>\r\n\r\nbody\r\n",
		"Message-Id:\r\n <2@b>\r\nSubject: s\r\n\r\n",
		"just a body line\r\nmore\r\n",
		"Subject: s\r\nnot a header\r\n",
		"Subject: s",
		"",
		" leading continuation\r\n\r\n",
		"Subject: s\n\tfolded\n\nbare LF body\n",
		"X-Long: " + string(bytes.Repeat([]byte("x"), 2000)) + "\r\n\r\n",
		":no name\r\n",
		"From: \xff\xfe\r\n\r\n",
	} {
		f.Add([]byte(s), uint16(16), uint16(1<<15))
	}
	f.Fuzz(func(t *testing.T, in []byte, bufSize, limit uint16) {
		// Small buffers make lines span refills and exceed the buffer.
		br := bufio.NewReaderSize(bytes.NewReader(in), int(bufSize))
		h, err := readHeader(br, int(limit))
		if err != nil {
			t.Fatalf("readHeader: %v", err)
		}
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatal(err)
		}
		if got := append(append([]byte{}, h.raw...), rest...); !bytes.Equal(got, in) {
			t.Fatalf("raw+rest != input:\nraw  %q\nrest %q\nin   %q", h.raw, rest, in)
		}
		if joined := bytes.Join(h.fields, nil); !bytes.Equal(joined, h.raw) {
			t.Fatalf("fields %q do not add up to raw %q", h.fields, h.raw)
		}
	})
}
