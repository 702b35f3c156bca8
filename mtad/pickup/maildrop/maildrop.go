// Package maildrop is the format of one file in the maildrop directory, the
// queue of local submissions that Postfix's postdrop writes and pickup
// reads. sendmail writes the envelope and content to the set-gid postdrop
// helper, which checks them, adds what only it may say (the submitting uid
// and the arrival time) and writes the file; pickup in mtad reads it.
//
// A file is a text envelope of one record a line, an empty line, and the
// message content as sendmail read it, with LF line ends:
//
//	sqlmta-maildrop 1
//	U 1000
//	T 1700000000
//	S "alice"
//	N "Alice Example"
//	R "bob@example.com"
//	X "carol@example.org"
//
//	Subject: hi
//	...
//
// Each record is a letter, a space and a value; string values are Go
// quoted (strconv.Quote), so any byte survives. The package imports only
// the standard library: the set-gid helper links it.
package maildrop

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Magic is the first line of every maildrop file.
const Magic = "sqlmta-maildrop 1"

// MaxRecord bounds one envelope line, so that a hostile file cannot make
// its reader buffer without end.
const MaxRecord = 64 * 1024

// MaxEnvelope bounds a whole envelope.
const MaxEnvelope = 16 << 20

// MaxRecipients bounds the envelope's recipients (Postfix has no fixed
// limit; this one only stops a runaway file).
const MaxRecipients = 100000

// Mode bits: postdrop creates a file 0600 and makes it 0700 once it is
// complete and synced; pickup ignores files without the owner's x bit, as
// Postfix's pickup does (MAIL_QUEUE_STAT_READY).
const (
	ModeWriting = 0o600
	ModeReady   = 0o700
)

// Envelope is what a maildrop file says besides the content.
type Envelope struct {
	UID     int       // U: the submitting user, written by postdrop only
	Arrival time.Time // T: written by postdrop only

	Sender     string   // S: envelope sender as given (-f), or the login name
	FullName   string   // N: -F, for a From: header cleanup adds
	Recipients []string // R: command-line recipients
	Extracted  []string // X: recipients sendmail -t found in the headers
	Notify     string   // D: DSN NOTIFY for every recipient (-N), "" for none
	Ret        string   // E: DSN RET (-R): "FULL" or "HDRS"
	EnvID      string   // I: DSN ENVID (-V)
	BodyType   string   // B: "7BIT" or "8BITMIME" (-B)
	Remote     bool     // G: -G, rewrite in the remote context
}

// Trusted reports whether record letter k may only be written by postdrop.
func Trusted(k byte) bool { return k == 'U' || k == 'T' }

// Write writes e's envelope and the empty line that ends it. trusted says
// whether to write the U and T records (postdrop does, sendmail does not).
func Write(w io.Writer, e *Envelope, trusted bool) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, Magic)
	if trusted {
		fmt.Fprintf(bw, "U %d\n", e.UID)
		fmt.Fprintf(bw, "T %d\n", e.Arrival.Unix())
	}
	str := func(k byte, v string) {
		fmt.Fprintf(bw, "%c %s\n", k, strconv.Quote(v))
	}
	str('S', e.Sender)
	if e.FullName != "" {
		str('N', e.FullName)
	}
	for _, r := range e.Recipients {
		str('R', r)
	}
	for _, r := range e.Extracted {
		str('X', r)
	}
	for _, f := range []struct {
		k byte
		v string
	}{{'D', e.Notify}, {'E', e.Ret}, {'I', e.EnvID}, {'B', e.BodyType}} {
		if f.v != "" {
			str(f.k, f.v)
		}
	}
	if e.Remote {
		fmt.Fprintln(bw, "G 1")
	}
	fmt.Fprintln(bw)
	return bw.Flush()
}

// ErrFormat marks a malformed envelope.
var ErrFormat = errors.New("malformed maildrop envelope")

// Read reads an envelope up to and including its empty line; br is left at
// the first byte of the content. allowTrusted says whether U and T records
// may appear (they may in a file, not in what sendmail hands postdrop).
func Read(br *bufio.Reader, allowTrusted bool) (*Envelope, error) {
	e := &Envelope{}
	first := true
	seen := map[byte]bool{}
	size := 0
	for {
		line, err := readLine(br)
		if err != nil {
			return nil, err
		}
		if size += len(line) + 1; size > MaxEnvelope {
			return nil, fmt.Errorf("%w: envelope larger than %d bytes", ErrFormat, MaxEnvelope)
		}
		if first {
			if line != Magic {
				return nil, fmt.Errorf("%w: bad first line", ErrFormat)
			}
			first = false
			continue
		}
		if line == "" {
			break
		}
		if len(line) < 3 || line[1] != ' ' {
			return nil, fmt.Errorf("%w: bad record %q", ErrFormat, clip(line))
		}
		k, v := line[0], line[2:]
		if Trusted(k) && !allowTrusted {
			return nil, fmt.Errorf("%w: record %c is postdrop's", ErrFormat, k)
		}
		if k != 'R' && k != 'X' {
			if seen[k] {
				return nil, fmt.Errorf("%w: record %c repeated", ErrFormat, k)
			}
			seen[k] = true
		}
		switch k {
		case 'U':
			e.UID, err = strconv.Atoi(v)
			if err == nil && e.UID < 0 {
				err = errors.New("negative")
			}
		case 'T':
			var t int64
			t, err = strconv.ParseInt(v, 10, 64)
			e.Arrival = time.Unix(t, 0)
		case 'G':
			e.Remote = v == "1"
		default:
			var s string
			if s, err = strconv.Unquote(v); err != nil {
				break
			}
			if strings.ContainsAny(s, "\r\n\x00") {
				err = errors.New("control character")
				break
			}
			switch k {
			case 'S':
				e.Sender = s
			case 'N':
				e.FullName = s
			case 'R', 'X':
				if len(e.Recipients)+len(e.Extracted) >= MaxRecipients {
					return nil, fmt.Errorf("%w: too many recipients", ErrFormat)
				}
				if k == 'R' {
					e.Recipients = append(e.Recipients, s)
				} else {
					e.Extracted = append(e.Extracted, s)
				}
			case 'D':
				e.Notify = s
			case 'E':
				e.Ret = s
			case 'I':
				e.EnvID = s
			case 'B':
				e.BodyType = s
			default:
				return nil, fmt.Errorf("%w: unknown record %c", ErrFormat, k)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%w: record %c: %v", ErrFormat, k, err)
		}
	}
	if !seen['S'] {
		return nil, fmt.Errorf("%w: no sender record", ErrFormat)
	}
	if allowTrusted && (!seen['U'] || !seen['T']) {
		return nil, fmt.Errorf("%w: no uid or time record", ErrFormat)
	}
	return e, nil
}

// readLine reads one LF-terminated line of at most MaxRecord bytes.
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, err := br.ReadSlice('\n')
		b = append(b, chunk...)
		if len(b) > MaxRecord {
			return "", fmt.Errorf("%w: record longer than %d bytes", ErrFormat, MaxRecord)
		}
		if err == nil {
			return string(b[:len(b)-1]), nil
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			return "", fmt.Errorf("%w: unexpected end of file", ErrFormat)
		}
		return "", err
	}
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
