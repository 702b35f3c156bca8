package pickup

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sqlmta/mtad/envelope"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/pickup/maildrop"
	"sqlmta/mtad/reply"
)

// rejecter is cleanup refusing every message for good, after reading it.
type rejecter struct{ calls int }

func (r *rejecter) Submit(_ context.Context, _ *envelope.Envelope, content io.Reader) error {
	r.calls++
	io.Copy(io.Discard, content)
	return reply.New(550, "5.7.1", "no spam please")
}

// bounces records what pickup hands the bouncer; err makes it fail.
type bounces struct {
	err                error
	env                *envelope.Envelope
	content, dsn, text string
}

func (b *bounces) Rejected(_ context.Context, env *envelope.Envelope, content io.Reader, dsn, text string) error {
	if b.err != nil {
		return b.err
	}
	c, err := io.ReadAll(content)
	b.env, b.content, b.dsn, b.text = env, string(c), dsn, text
	return err
}

func dropFile(t *testing.T, p *Pickup, content string) string {
	t.Helper()
	path := filepath.Join(p.Dir(), "F1")
	var buf bytes.Buffer
	env := &maildrop.Envelope{UID: os.Getuid(), Arrival: time.Now(), Sender: "alice@example.org", Recipients: []string{"bob@example.net", "carol@example.net"}}
	if err := maildrop.Write(&buf, env, true); err != nil {
		t.Fatal(err)
	}
	buf.WriteString(content)
	// The owner's execute bit says postdrop finished the file.
	if err := os.WriteFile(path, buf.Bytes(), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

func newTestPickup(t *testing.T, cfg Config, sub Submitter) (*Pickup, *bytes.Buffer) {
	t.Helper()
	var log bytes.Buffer
	cfg.QueueDir = t.TempDir()
	p, err := New(cfg, sub, maillog.New(&log, "mx", "postfix"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.fifo.Close() })
	return p, &log
}

// TestRejectedMailBounces checks that mail cleanup refuses goes to the
// bouncer with the reject reason and the content read again from the file;
// a bounce that fails keeps the file for the next pass.
func TestRejectedMailBounces(t *testing.T) {
	b := &bounces{err: errors.New("database down")}
	sub := &rejecter{}
	p, log := newTestPickup(t, Config{Bounce: b}, sub)
	path := dropFile(t, p, "Subject: spam\n\nbody\n")
	p.Scan(context.Background())
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the file of a failed bounce was removed: %v", err)
	}
	if !strings.Contains(log.String(), "database down") {
		t.Errorf("log:\n%s", log)
	}
	b.err = nil
	p.retryAt = time.Time{} // no back-off wait in a test
	p.Scan(context.Background())
	if sub.calls != 2 || b.env == nil {
		t.Fatalf("cleanup called %d times; bounced %v", sub.calls, b.env)
	}
	if b.dsn != "5.7.1" || b.text != "no spam please" || b.content != "Subject: spam\r\n\r\nbody\r\n" || b.env.Sender != "alice@example.org" || len(b.env.Recipients) != 2 {
		t.Errorf("bounce: %q %q %q %+v", b.dsn, b.text, b.content, b.env)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("maildrop file after the bounce: %v", err)
	}
	for _, rcpt := range []string{"bob", "carol"} {
		if !strings.Contains(log.String(), ": to=<"+rcpt+"@example.net>, relay=none, delay=") ||
			!strings.Contains(log.String(), "dsn=5.7.1, status=bounced (no spam please)") {
			t.Errorf("no status=bounced line for %s:\n%s", rcpt, log)
		}
	}
}

// TestTooBigBounces checks message_size_limit: cleanup is not asked, and the
// sender gets Postfix's "message file too big".
func TestTooBigBounces(t *testing.T) {
	b := &bounces{}
	sub := &rejecter{}
	p, _ := newTestPickup(t, Config{Bounce: b, SizeLimit: 10}, sub)
	dropFile(t, p, "Subject: big\n\n"+strings.Repeat("x", 100)+"\n")
	p.Scan(context.Background())
	if sub.calls != 0 || b.dsn != "5.3.4" || b.text != "message file too big" || !strings.HasPrefix(b.content, "Subject: big\r\n") {
		t.Errorf("cleanup calls %d; bounce %q %q %q", sub.calls, b.dsn, b.text, b.content)
	}
}
