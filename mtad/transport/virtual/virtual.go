// Package virtual is Postfix's virtual(8) delivery agent, the hosting
// provider's main path: virtual_mailbox_maps gives each address its mailbox
// path under virtual_mailbox_base (a trailing "/" means Maildir, else mbox),
// virtual_uid_maps and virtual_gid_maps its owner. The tables are usually
// SQL (pgsql:, mysql:, sqlite: .cf files or managed hash: tables).
package virtual

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sqlmta/mapdrivers"
	"sqlmta/mtad/transport"
	"sqlmta/mtad/transport/mailbox"
)

// Config is what virtual reads from main.cf.
type Config struct {
	Hostname    string // myhostname: Maildir file names
	OpenMap     func(ctx context.Context, spec string) (mapdrivers.Map, error)
	MailboxMaps []string // virtual_mailbox_maps
	UIDMaps     []string // virtual_uid_maps
	GIDMaps     []string // virtual_gid_maps
	MailboxBase string   // virtual_mailbox_base
	MinimumUID  int      // virtual_minimum_uid
	// MailboxLimit is virtual_mailbox_limit: the largest mbox or Maildir
	// file; 0 = none.
	MailboxLimit       int64
	Locks              mailbox.Locks // virtual_mailbox_lock
	RecipientDelimiter string
	// DefaultLayout, when virtual_mailbox_maps is empty, delivers every
	// address to base/<localpart>/Maildir/ as this process's user (sqlmta's
	// quick start, where Postfix would know no mailbox at all).
	DefaultLayout bool
}

// Transport is the virtual delivery agent. It is safe for concurrent use.
type Transport struct {
	cfg Config
	md  *mailbox.Maildir
}

var _ transport.Transport = (*Transport)(nil)

// New returns a Transport.
func New(cfg Config) *Transport {
	return &Transport{cfg: cfg, md: mailbox.NewMaildir(cfg.Hostname)}
}

// Verifies marks the transport as one that handles address verification
// probes (transport.Verifier): it looks the mailbox up and writes nothing.
func (t *Transport) Verifies() {}

// Deliver implements transport.Transport.
func (t *Transport) Deliver(ctx context.Context, d *transport.Delivery) []transport.Result {
	res := make([]transport.Result, len(d.Recipients))
	for i, r := range d.Recipients {
		start := time.Now()
		dsn, text := t.deliverOne(ctx, d, r)
		res[i] = transport.Result{RecipientID: r.ID, Status: transport.StatusForDSN(dsn), DSN: dsn, Text: text,
			Relay: "virtual", Transmit: time.Since(start)}
	}
	return res
}

// keys are the lookup keys for addr: user+ext@domain, user@domain,
// @domain.
func (t *Transport) keys(addr string) []string {
	addr = strings.ToLower(addr)
	keys := []string{addr}
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return keys
	}
	local, domain := addr[:i], addr[i+1:]
	if t.cfg.RecipientDelimiter != "" {
		if j := strings.IndexAny(local, t.cfg.RecipientDelimiter); j > 0 {
			keys = append(keys, local[:j]+"@"+domain)
		}
	}
	return append(keys, "@"+domain)
}

// lookup returns the first value any table has for any key, keys first.
func (t *Transport) lookup(ctx context.Context, param string, specs []string, addr string) (string, bool, error) {
	for _, key := range t.keys(addr) {
		for _, spec := range specs {
			m, err := t.cfg.OpenMap(ctx, spec)
			if err != nil {
				return "", false, fmt.Errorf("%s: %w", param, err)
			}
			if m.Props().Pattern && key != strings.ToLower(addr) {
				continue
			}
			v, found, err := m.Lookup(ctx, key)
			if err != nil {
				return "", false, fmt.Errorf("%s: %s: %w", param, spec, err)
			}
			if found {
				return strings.TrimSpace(v), true, nil
			}
		}
	}
	return "", false, nil
}

func (t *Transport) id(ctx context.Context, param string, specs []string, addr string) (int, error) {
	v, found, err := t.lookup(ctx, param, specs, addr)
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("recipient %s: %s lookup failed", addr, strings.TrimSuffix(param, "_maps"))
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("recipient %s: bad %s value: %s", addr, param, v)
	}
	return n, nil
}

func (t *Transport) deliverOne(ctx context.Context, d *transport.Delivery, r transport.Recipient) (dsn, text string) {
	var path string
	uid, gid := os.Getuid(), os.Getgid()
	if len(t.cfg.MailboxMaps) == 0 && t.cfg.DefaultLayout {
		local := strings.ToLower(r.Address)
		if i := strings.LastIndexByte(local, '@'); i >= 0 {
			local = local[:i]
		}
		// The localpart becomes a path component: nothing may climb out
		// of base or hide as a dot file.
		if local == "" || strings.ContainsAny(local, "/\x00") || strings.HasPrefix(local, ".") {
			return "5.1.1", fmt.Sprintf("unknown user: %q", r.Address)
		}
		path = filepath.Join(t.cfg.MailboxBase, local, "Maildir") + "/"
	} else {
		rel, found, err := t.lookup(ctx, "virtual_mailbox_maps", t.cfg.MailboxMaps, r.Address)
		if err != nil {
			return "4.3.0", err.Error()
		}
		if !found {
			return "5.1.1", fmt.Sprintf("unknown user: %q", strings.ToLower(r.Address))
		}
		if rel == "" || strings.Contains("/"+rel+"/", "/../") {
			return "4.3.0", fmt.Sprintf("recipient %s: bad virtual_mailbox_maps value: %q", r.Address, rel)
		}
		path = filepath.Join(t.cfg.MailboxBase, rel)
		if strings.HasSuffix(rel, "/") {
			path += "/"
		}
		if uid, err = t.id(ctx, "virtual_uid_maps", t.cfg.UIDMaps, r.Address); err != nil {
			return "4.3.0", err.Error()
		}
		if uid < t.cfg.MinimumUID {
			return "4.3.0", fmt.Sprintf("recipient %s: bad uid %d in virtual_uid_maps", r.Address, uid)
		}
		if gid, err = t.id(ctx, "virtual_gid_maps", t.cfg.GIDMaps, r.Address); err != nil {
			return "4.3.0", err.Error()
		}
	}
	if d.VerifyOnly {
		// A probe: the mailbox is known, nothing is written.
		if strings.HasSuffix(path, "/") {
			return "2.0.0", "delivers to maildir"
		}
		return "2.0.0", "delivers to mailbox"
	}
	orig := r.Orig
	if orig == "" {
		orig = r.Address
	}
	env := mailbox.Envelope{Sender: d.Sender, OrigRcpt: orig, Delivered: r.Address}
	copier := func(flags mailbox.Flags) func(io.Writer) error {
		return func(w io.Writer) error {
			body, err := d.Open(ctx)
			if err != nil {
				return &mailbox.ReadError{Err: err}
			}
			defer body.Close()
			return mailbox.Copy(ctx, w, flags, env, body)
		}
	}
	chown := os.Geteuid() == 0 && uid != os.Geteuid()
	base := mailbox.ReturnPath | mailbox.OrigRcpt | mailbox.Delivered
	var err error
	if strings.HasSuffix(path, "/") {
		err = t.md.Deliver(ctx, mailbox.Target{Dir: path, UID: uid, GID: gid, Chown: chown, Limit: t.cfg.MailboxLimit,
			Key: mailbox.DeliveryKey(d.QueueID, r.ID), Retaken: r.TakenOver}, copier(base))
		if err == nil {
			return "2.0.0", "delivered to maildir"
		}
		return failure(err, "maildir delivery failed: ")
	}
	if err := mailbox.MkdirAll(filepath.Dir(path), chown, uid, gid); err != nil {
		return failure(err, fmt.Sprintf("cannot update mailbox %s for user %s. ", path, r.Address))
	}
	mb := &mailbox.Mbox{Path: path, UID: uid, GID: gid, Chown: chown, Limit: t.cfg.MailboxLimit, Locks: t.cfg.Locks}
	if err = mb.Append(ctx, copier(base|mailbox.MboxFlags)); err != nil {
		return failure(err, fmt.Sprintf("cannot update mailbox %s for user %s. ", path, r.Address))
	}
	return "2.0.0", "delivered to mailbox"
}

func failure(err error, prefix string) (string, string) {
	var me *mailbox.Error
	if errors.As(err, &me) {
		return me.DSN, prefix + me.Text
	}
	return "4.2.0", prefix + err.Error()
}
