package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"sqlmta/mtad/transport/mailbox"
)

// copier returns the write function that streams the message with flags.
func (rq *request) copier(ctx context.Context, flags mailbox.Flags, a attr) func(io.Writer) error {
	env := mailbox.Envelope{Sender: a.sender, OrigRcpt: rq.orig(), Delivered: a.delivered}
	return func(w io.Writer) error {
		body, err := rq.d.Open(ctx)
		if err != nil {
			return &mailbox.ReadError{Err: err}
		}
		defer body.Close()
		return mailbox.Copy(ctx, w, flags, env, body)
	}
}

// fileFlags are mail_copy's flags for a file or mailbox (MAIL_COPY_MBOX),
// without Delivered-To unless prepend_delivered_header has "file".
func (rq *request) fileFlags(mbox bool) mailbox.Flags {
	f := mailbox.ReturnPath | mailbox.OrigRcpt | mailbox.Delivered
	if mbox {
		f |= mailbox.MboxFlags
	}
	if !slices.Contains(rq.t.cfg.PrependDelivered, "file") {
		f &^= mailbox.Delivered
	}
	return f
}

// mailbox delivers to the user's mailbox: mailbox_command, home_mailbox, else the mail spool file.
func (rq *request) mailbox(ctx context.Context, a attr, u *User, lp, ext string) {
	t := rq.t
	if rq.seen("mailbox " + u.Name) {
		return
	}
	if t.cfg.MailboxCommand != "" {
		// Not $name-expanded, unlike other parameters, so that shell
		// syntax stays easy (postconf(5)).
		rq.command(ctx, a, u, t.cfg.MailboxCommand, u.Home)
		return
	}
	if rq.d.VerifyOnly {
		if strings.HasSuffix(t.cfg.HomeMailbox, "/") || t.cfg.HomeMailbox == "" && strings.HasSuffix(t.cfg.MailSpoolDirectory, "/") {
			rq.add(a.rcpt, "2.0.0", "delivers to maildir")
		} else {
			rq.add(a.rcpt, "2.0.0", "delivers to mailbox")
		}
		return
	}
	var path string
	switch {
	case t.cfg.HomeMailbox != "":
		path = filepath.Join(u.Home, t.cfg.HomeMailbox)
		if strings.HasSuffix(t.cfg.HomeMailbox, "/") {
			path += "/"
		}
	default:
		spool := cmpOr(t.cfg.MailSpoolDirectory, "/var/mail")
		path = filepath.Join(spool, u.Name)
		if strings.HasSuffix(spool, "/") {
			path += "/"
		}
	}
	chown := os.Geteuid() == 0
	if strings.HasSuffix(path, "/") {
		err := t.md.Deliver(ctx, mailbox.Target{Dir: path, UID: u.UID, GID: u.GID, Chown: chown, Limit: t.cfg.MailboxSizeLimit,
			Key: rq.key(), Retaken: rq.r.TakenOver},
			rq.copier(ctx, rq.fileFlags(false), a))
		if err != nil {
			rq.failText(a.rcpt, err, "maildir delivery failed: ")
			return
		}
		rq.add(a.rcpt, "2.0.0", "delivered to maildir")
		return
	}
	mb := &mailbox.Mbox{Path: path, UID: u.UID, GID: u.GID, Chown: chown, Limit: t.cfg.MailboxSizeLimit, Locks: t.cfg.MailboxLocks}
	if err := mb.Append(ctx, rq.copier(ctx, rq.fileFlags(true), a)); err != nil {
		rq.failText(a.rcpt, err, fmt.Sprintf("cannot update mailbox %s for user %s. ", path, u.Name))
		return
	}
	rq.add(a.rcpt, "2.0.0", "delivered to mailbox")
}

// failText records a failure with Postfix's prefix for its kind.
func (rq *request) failText(to string, err error, prefix string) {
	var me *mailbox.Error
	if errors.As(err, &me) {
		rq.add(to, me.DSN, prefix+me.Text)
		return
	}
	rq.add(to, "4.3.0", prefix+err.Error())
}

// file appends to a /file from an alias, .forward or include (a trailing
// "/" makes it a Maildir), with the privileges of that context.
func (rq *request) file(ctx context.Context, a attr, path string) {
	t := rq.t
	if rq.seen("file " + path) {
		return
	}
	priv := a.priv
	if priv != nil {
		if err := writable(path, priv); err != nil {
			rq.add(a.rcpt, "5.2.0", fmt.Sprintf("cannot append message to file %s: %s", path, mailbox.ErrnoText(err)))
			return
		}
	}
	if rq.d.VerifyOnly {
		rq.add(a.rcpt, "2.0.0", "delivers to file: "+path)
		return
	}
	uid, gid, chown := 0, 0, false
	if priv != nil {
		uid, gid, chown = priv.UID, priv.GID, true
	}
	if strings.HasSuffix(path, "/") {
		err := t.md.Deliver(ctx, mailbox.Target{Dir: path, UID: uid, GID: gid, Chown: chown, Limit: t.cfg.MailboxSizeLimit,
			Key: rq.key(), Retaken: rq.r.TakenOver},
			rq.copier(ctx, rq.fileFlags(false), a))
		if err != nil {
			rq.failText(a.rcpt, err, "maildir delivery failed: ")
			return
		}
		rq.add(a.rcpt, "2.0.0", "delivered to maildir")
		return
	}
	mb := &mailbox.Mbox{Path: path, UID: uid, GID: gid, Chown: chown, Limit: t.cfg.MailboxSizeLimit,
		Locks: t.cfg.MailboxLocks, DotlockMayFail: true}
	if err := mb.Append(ctx, rq.copier(ctx, rq.fileFlags(true), a)); err != nil {
		var me *mailbox.Error
		if errors.As(err, &me) && strings.HasPrefix(me.Text, "cannot open file") {
			rq.add(a.rcpt, me.DSN, me.Text)
			return
		}
		rq.failText(a.rcpt, err, fmt.Sprintf("cannot append message to file %s: ", path))
		return
	}
	rq.add(a.rcpt, "2.0.0", "delivered to file: "+path)
}

// writable checks, for a delivery that mtad (root) makes on behalf of u,
// that u could write path (or create it in its directory): Go cannot
// switch one goroutine's credentials, so the kernel's check is redone
// here from the mode bits.
func writable(path string, u *User) error {
	if u.UID == 0 {
		return nil
	}
	groups := map[int]bool{u.GID: true}
	if su, err := user.Lookup(u.Name); err == nil {
		if ids, err := su.GroupIds(); err == nil {
			for _, g := range ids {
				if n, err := strconv.Atoi(g); err == nil {
					groups[n] = true
				}
			}
		}
	}
	may := func(fi os.FileInfo, want os.FileMode) bool {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false
		}
		perm := fi.Mode().Perm()
		switch {
		case int(st.Uid) == u.UID:
			return perm&(want<<6) == want<<6
		case groups[int(st.Gid)]:
			return perm&(want<<3) == want<<3
		}
		return perm&want == want
	}
	dir := filepath.Dir(strings.TrimSuffix(path, "/"))
	if di, err := os.Stat(dir); err != nil {
		return err
	} else if !may(di, 0o1) {
		return syscall.EACCES
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		di, _ := os.Stat(dir)
		if !may(di, 0o3) {
			return syscall.EACCES
		}
		return nil
	}
	if err != nil {
		return err
	}
	want := os.FileMode(0o2)
	if fi.IsDir() {
		want = 0o3
	}
	if !may(fi, want) {
		return syscall.EACCES
	}
	return nil
}

// command runs a |command or mailbox_command with the message on its
// input, as priv (nil: as this process).
func (rq *request) command(ctx context.Context, a attr, priv *User, line, dir string) {
	t := rq.t
	key := "command " + line
	if priv != nil {
		key += " " + strconv.Itoa(priv.UID)
	}
	if rq.seen(key) {
		return
	}
	if rq.d.VerifyOnly {
		rq.add(a.rcpt, "2.0.0", "delivers to command: "+line)
		return
	}
	flags := mailbox.From | mailbox.ReturnPath | mailbox.OrigRcpt
	if slices.Contains(t.cfg.PrependDelivered, "command") {
		flags |= mailbox.Delivered
	}
	c := &mailbox.Command{Line: line, Shell: t.cfg.LocalCommandShell, Env: rq.environ(a, priv),
		TimeLimit: t.cfg.CommandTimeLimit, Dir: "/"}
	if dir != "" {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			c.Dir = dir
		}
	}
	if priv != nil && os.Geteuid() == 0 {
		c.UID, c.GID, c.Setuid = priv.UID, priv.GID, true
	}
	if err := c.Run(ctx, rq.copier(ctx, flags, a)); err != nil {
		rq.fail(a.rcpt, err)
		return
	}
	rq.add(a.rcpt, "2.0.0", "delivered to command: "+line)
}

// environ is the command environment local(8) documents.
func (rq *request) environ(a attr, priv *User) []string {
	t := rq.t
	var env []string
	for _, name := range t.cfg.ExportEnvironment {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	env = append(env, "PATH=/usr/bin:/bin")
	if priv != nil {
		env = append(env, "HOME="+priv.Home, "LOGNAME="+priv.Name, "USER="+priv.Name, "SHELL="+priv.Shell)
	}
	localpart, domain := splitAddr(a.rcpt)
	lp := strings.ToLower(strings.TrimPrefix(localpart, `\`))
	_, ext := t.splitExt(lp)
	env = append(env,
		"SENDER="+a.sender,
		"RECIPIENT="+a.rcpt,
		"LOCAL="+lp,
		"DOMAIN="+domain,
		"EXTENSION="+ext,
		"ORIGINAL_RECIPIENT="+rq.orig(),
	)
	if rq.d.EnvID != "" {
		env = append(env, "ENVID="+rq.d.EnvID)
	}
	return env
}

// key names this request's Maildir files; each Maildir gets one copy per
// request (rq.seen), so the queued recipient is enough.
func (rq *request) key() string { return mailbox.DeliveryKey(rq.d.QueueID, rq.r.ID) }
