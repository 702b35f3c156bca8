// Package maildir delivers into Maildirs, as Postfix's virtual(8) and
// local(8) do for a mailbox path ending in "/": the message is written to
// tmp/, synced, then linked into new/, so a reader never sees half a
// message and a crash leaves at worst a stray file in tmp/ (the Maildir
// protocol, cr.yp.to/proto/maildir.html).
package maildir

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"sqlmta/mtad/transport"
)

// MailboxError is a mailbox lookup failure with the status it should get
// (Bounced for a 5.x.x DSN, Deferred for 4.x.x).
type MailboxError struct {
	DSN  string // e.g. "5.1.1"
	Text string // e.g. `unknown user: "bob"`
}

func (e *MailboxError) Error() string { return e.Text }

// MailboxFunc maps a recipient address to its Maildir (ending in "/") and
// the owner files are created for.
type MailboxFunc func(rcpt string) (path string, uid, gid int, err error)

// Config configures a Transport.
type Config struct {
	// Mailbox finds each recipient's Maildir. A *MailboxError decides the
	// status; any other error defers the recipient.
	Mailbox MailboxFunc
	// Relay names the transport in the log: "virtual" or "local".
	Relay string
	// Hostname is the right part of file names; default os.Hostname().
	Hostname string
}

// Transport delivers to Maildirs. It is safe for concurrent use.
type Transport struct {
	cfg   Config
	host  string
	count atomic.Uint64
}

var _ transport.Transport = (*Transport)(nil)

// New returns a Transport.
func New(cfg Config) *Transport {
	if cfg.Relay == "" {
		cfg.Relay = "virtual"
	}
	host := cfg.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	if host == "" {
		host = "localhost"
	}
	// The spec's escapes for characters that would break the name.
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	return &Transport{cfg: cfg, host: host}
}

// Deliver implements transport.Transport: one file per recipient.
func (t *Transport) Deliver(ctx context.Context, d *transport.Delivery) []transport.Result {
	res := make([]transport.Result, len(d.Recipients))
	for i, r := range d.Recipients {
		start := time.Now()
		dsn, text := t.deliverOne(ctx, d, r)
		res[i] = transport.Result{
			RecipientID: r.ID, Status: transport.StatusForDSN(dsn), DSN: dsn, Text: text,
			Relay: t.cfg.Relay, Transmit: time.Since(start),
		}
	}
	return res
}

func (t *Transport) deliverOne(ctx context.Context, d *transport.Delivery, r transport.Recipient) (dsn, text string) {
	if err := ctx.Err(); err != nil {
		return "4.3.0", "delivery interrupted: " + err.Error()
	}
	if t.cfg.Mailbox == nil {
		return "4.3.5", "maildir transport has no mailbox lookup configured"
	}
	dir, uid, gid, err := t.cfg.Mailbox(r.Address)
	if err != nil {
		var me *MailboxError
		if errors.As(err, &me) {
			return me.DSN, me.Text
		}
		return "4.3.0", err.Error()
	}
	if err := t.write(ctx, d, r, dir, uid, gid); err != nil {
		// The Maildir's location is the admin's choice, so a write
		// failure is retried, except when the user is over quota
		// (Postfix: mbox_dsn, EDQUOT/EFBIG → 5.2.2).
		dsn := "4.2.0"
		if errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG) {
			dsn = "5.2.2"
		}
		return dsn, "maildir delivery failed: " + err.Error()
	}
	return "2.0.0", "delivered to maildir"
}

// write delivers one copy: tmp/ file, fsync, link into new/, fsync new/.
func (t *Transport) write(ctx context.Context, d *transport.Delivery, r transport.Recipient, dir string, uid, gid int) error {
	chown := os.Geteuid() == 0 && uid != 0
	tmpDir, newDir, curDir := filepath.Join(dir, "tmp"), filepath.Join(dir, "new"), filepath.Join(dir, "cur")
	for _, p := range []string{tmpDir, newDir, curDir} {
		if err := mkdirs(p, chown, uid, gid); err != nil {
			return err
		}
	}

	now := time.Now()
	name := fmt.Sprintf("%d.M%dP%dQ%d.%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(), t.count.Add(1), t.host)
	tmpPath := filepath.Join(tmpDir, name)
	f, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %s", tmpPath, errnoText(err))
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmpPath)
		}
	}()
	if chown {
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("chown %s: %s", tmpPath, errnoText(err))
		}
	}
	if err := t.copyMessage(ctx, f, d, r); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %s", tmpPath, errnoText(err))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %s", tmpPath, errnoText(err))
	}
	ok = true
	newPath := filepath.Join(newDir, name)
	if err := os.Link(tmpPath, newPath); err != nil {
		os.Remove(tmpPath)
		return fmt.Errorf("link to %s: %s", newPath, errnoText(err))
	}
	_ = os.Remove(tmpPath)
	// The new directory entry must survive a crash before we say "sent".
	if err := syncDir(newDir); err != nil {
		return fmt.Errorf("fsync %s: %s", newDir, errnoText(err))
	}
	return nil
}

// copyMessage writes the delivery headers Postfix adds, then the content
// with CRLF turned into LF (Maildir files are in the local text format).
func (t *Transport) copyMessage(ctx context.Context, f *os.File, d *transport.Delivery, r transport.Recipient) error {
	w := bufio.NewWriterSize(f, 64<<10)
	orig := r.Orig
	if orig == "" {
		orig = r.Address
	}
	// Same order as Postfix's mail_copy(): Return-Path, X-Original-To,
	// Delivered-To (lowercased, so loop detection compares reliably).
	fmt.Fprintf(w, "Return-Path: <%s>\n", d.Sender)
	fmt.Fprintf(w, "X-Original-To: %s\n", orig)
	fmt.Fprintf(w, "Delivered-To: %s\n", strings.ToLower(r.Address))

	body, err := d.Open(ctx)
	if err != nil {
		return fmt.Errorf("read message content: %v", err)
	}
	defer body.Close()
	lf := &crlfToLF{w: w}
	if _, err := io.Copy(lf, &readTagger{r: body}); err != nil {
		var re *readError
		if errors.As(err, &re) {
			return fmt.Errorf("read message content: %v", re.err)
		}
		return fmt.Errorf("write %s: %s", f.Name(), errnoText(err))
	}
	if err := lf.flush(); err != nil {
		return fmt.Errorf("write %s: %s", f.Name(), errnoText(err))
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write %s: %s", f.Name(), errnoText(err))
	}
	return nil
}

// readError marks an error from the content source, not the disk.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }

type readTagger struct{ r io.Reader }

func (t *readTagger) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}

// crlfToLF drops the CR of every CRLF; a lone CR is kept. A CR at the end of
// one Write is held until the next byte is known.
type crlfToLF struct {
	w      io.Writer
	heldCR bool
}

func (c *crlfToLF) Write(p []byte) (int, error) {
	out := make([]byte, 0, len(p)+1)
	for i, b := range p {
		if c.heldCR {
			c.heldCR = false
			if b != '\n' {
				out = append(out, '\r')
			}
		}
		if b == '\r' {
			if i == len(p)-1 {
				c.heldCR = true
				continue
			}
			if p[i+1] == '\n' {
				continue
			}
		}
		out = append(out, b)
	}
	if _, err := c.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *crlfToLF) flush() error {
	if c.heldCR {
		c.heldCR = false
		_, err := c.w.Write([]byte{'\r'})
		return err
	}
	return nil
}

// mkdirs creates p and missing parents with mode 0700, giving each one it
// creates to uid/gid when chown is set (Postfix's make_dirs as the user).
func mkdirs(p string, chown bool, uid, gid int) error {
	if fi, err := os.Stat(p); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("create %s: Not a directory", p)
		}
		return nil
	}
	parent := filepath.Dir(p)
	if parent != p {
		if err := mkdirs(parent, chown, uid, gid); err != nil {
			return err
		}
	}
	if err := os.Mkdir(p, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil // created concurrently
		}
		return fmt.Errorf("create %s: %s", p, errnoText(err))
	}
	if chown {
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %s", p, errnoText(err))
		}
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// errnoText is the C library's wording of an errno ("Permission denied"),
// which is what Postfix's %m prints.
func errnoText(err error) string {
	var en syscall.Errno
	if errors.As(err, &en) {
		s := en.Error()
		if s != "" {
			return strings.ToUpper(s[:1]) + s[1:]
		}
	}
	return err.Error()
}

// LocalMailbox is local(8)'s home_mailbox delivery: user@domain (or just
// user) is a local account, and the mailbox is $HOME/<homeMailbox>, owned by
// that user. Only Maildir (homeMailbox ending in "/") is supported.
func LocalMailbox(homeMailbox string) MailboxFunc {
	return func(rcpt string) (string, int, int, error) {
		name := localpart(rcpt)
		u, err := user.Lookup(strings.ToLower(name))
		if err != nil {
			var unknown user.UnknownUserError
			if errors.As(err, &unknown) {
				return "", 0, 0, &MailboxError{DSN: "5.1.1", Text: fmt.Sprintf("unknown user: %q", strings.ToLower(name))}
			}
			return "", 0, 0, &MailboxError{DSN: "4.3.0", Text: fmt.Sprintf("cannot look up user %q: %v", name, err)}
		}
		if !strings.HasSuffix(homeMailbox, "/") {
			return "", 0, 0, &MailboxError{DSN: "4.3.0", Text: fmt.Sprintf("mbox delivery not supported yet (home_mailbox = %s)", homeMailbox)}
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			return "", 0, 0, &MailboxError{DSN: "4.3.0", Text: fmt.Sprintf("user %q has a non-numeric uid/gid", u.Username)}
		}
		if u.HomeDir == "" {
			return "", 0, 0, &MailboxError{DSN: "4.3.0", Text: fmt.Sprintf("user %q has no home directory", u.Username)}
		}
		return filepath.Join(u.HomeDir, homeMailbox) + "/", uid, gid, nil
	}
}

// VirtualMailbox puts each recipient's Maildir at <base>/<localpart>/Maildir/
// (localpart lowercased), owned by this process's user.
func VirtualMailbox(base string) MailboxFunc {
	return func(rcpt string) (string, int, int, error) {
		name := strings.ToLower(localpart(rcpt))
		// The localpart becomes a path component: nothing may climb out
		// of base or hide as a dot file.
		if name == "" || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
			return "", 0, 0, &MailboxError{DSN: "5.1.1", Text: fmt.Sprintf("unknown user: %q", name)}
		}
		return filepath.Join(base, name, "Maildir") + "/", os.Getuid(), os.Getgid(), nil
	}
}

// localpart is the part before the last "@", or the whole address.
func localpart(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[:i]
	}
	return addr
}
