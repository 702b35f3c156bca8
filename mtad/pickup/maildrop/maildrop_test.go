package maildrop

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	in := &Envelope{
		UID: 1000, Arrival: time.Unix(1700000000, 0), Sender: `"odd local"@example.org`, FullName: "Zoë \"Z\" Example",
		Recipients: []string{"a@example.com", ""}, Extracted: []string{"b@example.com"},
		Notify: "SUCCESS,DELAY", Ret: "HDRS", EnvID: "id-1", BodyType: "8BITMIME", Remote: true,
	}
	var buf bytes.Buffer
	if err := Write(&buf, in, true); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("Subject: x\n\nbody\n")
	br := bufio.NewReader(&buf)
	out, err := Read(br, true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("read %+v, want %+v", out, in)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "Subject: x\n\nbody\n" {
		t.Errorf("content %q", rest)
	}
}

func TestReadRejects(t *testing.T) {
	for name, s := range map[string]string{
		"uid from sendmail":  Magic + "\nU 0\nS \"x\"\n\n",
		"time from sendmail": Magic + "\nT 1\nS \"x\"\n\n",
		"no magic":           "S \"x\"\n\n",
		"no sender":          Magic + "\nR \"x\"\n\n",
		"unquoted":           Magic + "\nS x\n\n",
		"newline in value":   Magic + "\nS \"a\\nb\"\n\n",
		"repeated sender":    Magic + "\nS \"a\"\nS \"b\"\n\n",
		"unknown record":     Magic + "\nS \"a\"\nZ \"b\"\n\n",
		"truncated":          Magic + "\nS \"a\"\n",
		"long record":        Magic + "\nS \"" + strings.Repeat("a", MaxRecord) + "\"\n\n",
	} {
		if _, err := Read(bufio.NewReader(strings.NewReader(s)), false); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err %v, want ErrFormat", name, err)
		}
	}
	// A file must have both of postdrop's records.
	if _, err := Read(bufio.NewReader(strings.NewReader(Magic+"\nU 5\nS \"a\"\n\n")), true); !errors.Is(err, ErrFormat) {
		t.Errorf("file without T: %v", err)
	}
}
