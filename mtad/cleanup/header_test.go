package cleanup

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

func TestReadHeader(t *testing.T) {
	cases := []struct {
		name, in, raw, rest, mid string
		date, from               bool
	}{
		{
			name: "plain",
			in:   "From: a@b\r\nDate: x\r\nMessage-ID: <1@b>\r\n\r\nbody\r\n",
			raw:  "From: a@b\r\nDate: x\r\nMessage-ID: <1@b>\r\n", rest: "\r\nbody\r\n",
			mid: "<1@b>", date: true, from: true,
		},
		{
			name: "folded message-id",
			in:   "Message-Id:\r\n <2@b>\r\nSubject: s\r\n\r\n",
			raw:  "Message-Id:\r\n <2@b>\r\nSubject: s\r\n", rest: "\r\n", mid: "<2@b>",
		},
		{
			name: "no header at all",
			in:   "just a body line\r\nmore\r\n", raw: "", rest: "just a body line\r\nmore\r\n",
		},
		{
			name: "header then non-header line",
			in:   "Subject: s\r\nnot a header\r\n", raw: "Subject: s\r\n", rest: "not a header\r\n",
		},
		{
			name: "no final newline",
			in:   "Subject: s", raw: "Subject: s", rest: "",
		},
		{
			name: "empty",
			in:   "", raw: "", rest: "",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(c.in), 16) // small buffer: lines span refills
			h, err := readHeader(br, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(br)
			if string(h.raw) != c.raw || string(rest) != c.rest {
				t.Errorf("raw=%q rest=%q, want %q / %q", h.raw, rest, c.raw, c.rest)
			}
			if h.messageID != c.mid || h.hasDate != c.date || h.hasFrom != c.from {
				t.Errorf("got mid=%q date=%v from=%v", h.messageID, h.hasDate, h.hasFrom)
			}
		})
	}
}

func TestReadHeaderLimit(t *testing.T) {
	in := strings.Repeat("X-Pad: 0123456789\r\n", 100) + "\r\nbody"
	br := bufio.NewReader(strings.NewReader(in))
	h, err := readHeader(br, 100)
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(br)
	if len(h.raw) < 100 || len(h.raw) > 100+19 || string(h.raw)+string(rest) != in {
		t.Errorf("limit not honoured or content lost: raw %d bytes", len(h.raw))
	}
}
