// Package maildir is a minimal Maildir-only delivery agent: each recipient
// maps to one Maildir through a MailboxFunc, and the file is written by
// package mailbox (tmp/ → new/, synced). The local and virtual transports
// are the full agents; this one serves simple set-ups and tests.
package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sqlmta/mtad/transport"
	"sqlmta/mtad/transport/mailbox"
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
	cfg Config
	md  *mailbox.Maildir
}

var _ transport.Transport = (*Transport)(nil)

// New returns a Transport.
func New(cfg Config) *Transport {
	if cfg.Relay == "" {
		cfg.Relay = "virtual"
	}
	return &Transport{cfg: cfg, md: mailbox.NewMaildir(cfg.Hostname)}
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
	orig := r.Orig
	if orig == "" {
		orig = r.Address
	}
	env := mailbox.Envelope{Sender: d.Sender, OrigRcpt: orig, Delivered: r.Address}
	target := mailbox.Target{Dir: dir, UID: uid, GID: gid, Chown: os.Geteuid() == 0 && uid != 0}
	err = t.md.Deliver(ctx, target, func(w io.Writer) error {
		body, err := d.Open(ctx)
		if err != nil {
			return &mailbox.ReadError{Err: err}
		}
		defer body.Close()
		return mailbox.Copy(ctx, w, mailbox.ReturnPath|mailbox.OrigRcpt|mailbox.Delivered, env, body)
	})
	if err != nil {
		// The Maildir's location is the admin's choice, so a write
		// failure is retried, except when the user is over quota
		// (Postfix: mbox_dsn, EDQUOT/EFBIG → 5.2.2).
		var me *mailbox.Error
		if errors.As(err, &me) {
			return me.DSN, "maildir delivery failed: " + me.Text
		}
		return "4.2.0", "maildir delivery failed: " + err.Error()
	}
	return "2.0.0", "delivered to maildir"
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
