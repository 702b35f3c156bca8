package local

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"sqlmta/mtad/envelope"
	"sqlmta/mtad/transport/mailbox"
)

// expand delivers to each item of an alias value, .forward or include
// file: |command, /file, :include:/file, or an address.
func (rq *request) expand(ctx context.Context, a attr, value string) {
	t := rq.t
	for _, item := range splitItems(value) {
		if strings.HasPrefix(item, `"`) && strings.HasSuffix(item, `"`) && len(item) >= 2 {
			item = strings.TrimSpace(item[1 : len(item)-1])
		}
		switch {
		case strings.HasPrefix(item, "|"):
			if !slices.Contains(t.cfg.AllowMailToCommands, a.context) {
				rq.add(a.rcpt, "5.7.1", "mail to command is restricted")
				continue
			}
			rq.command(ctx, a, a.priv, strings.TrimSpace(item[1:]), "")
		case strings.HasPrefix(item, "/"):
			if !slices.Contains(t.cfg.AllowMailToFiles, a.context) {
				rq.add(a.rcpt, "5.7.1", "mail to file is restricted")
				continue
			}
			rq.file(ctx, a, item)
		case strings.HasPrefix(strings.ToLower(item), ":include:"):
			rq.include(ctx, a, strings.TrimSpace(item[len(":include:"):]))
		default:
			rq.address(ctx, a, t.cfg.Qualify(item))
		}
	}
}

// splitItems splits on commas and newlines outside double quotes, and drops
// comment lines.
func splitItems(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	flush := func() {
		if v := strings.TrimSpace(cur.String()); v != "" {
			out = append(out, v)
		}
		cur.Reset()
	}
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for i := 0; i < len(line); i++ {
			c := line[i]
			switch {
			case c == '\\' && quoted && i+1 < len(line):
				cur.WriteByte(c)
				i++
				c = line[i]
			case c == '"':
				quoted = !quoted
			case c == ',' && !quoted:
				flush()
				continue
			}
			cur.WriteByte(c)
		}
		if !quoted {
			flush()
		} else {
			cur.WriteByte(' ')
		}
	}
	flush()
	return out
}

// address handles one address from an expansion. The address being
// expanded appearing in its own expansion means its mailbox; other local
// addresses are delivered within this request unless an owner- alias or
// an include file asks for resubmission; the rest is forwarded.
func (rq *request) address(ctx context.Context, a attr, addr string) {
	if addr == "" {
		return
	}
	b := a
	b.level++
	b.rcpt = addr
	b.context, b.priv = "", nil
	if a.context != "" && strings.EqualFold(addr, a.rcpt) {
		b.mailOnly = true
		rq.recipient(ctx, b)
		return
	}
	if rq.t.cfg.IsLocal(addr) && !a.owner && a.context != "include" {
		b.mailOnly, b.owner = false, false
		rq.recipient(ctx, b)
		return
	}
	if rq.seen("forward " + strings.ToLower(addr)) {
		return
	}
	for _, g := range rq.fwd {
		if g.sender == a.sender && g.delivered == a.delivered {
			g.addrs = append(g.addrs, addr)
			return
		}
	}
	rq.fwd = append(rq.fwd, &fwdGroup{sender: a.sender, delivered: a.delivered, addrs: []string{addr}})
}

// include expands a :include: file: an absolute path to a regular file that
// is not world-writable. Commands and files in it run as its owner.
func (rq *request) include(ctx context.Context, a attr, path string) {
	if !filepath.IsAbs(path) {
		rq.add(a.rcpt, "5.3.5", fmt.Sprintf(":include:%s uses a relative path", path))
		return
	}
	if rq.seen("include " + path) {
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		rq.add(a.rcpt, mailbox.DSNFor(err, "5.3.5"), fmt.Sprintf("cannot open include file %s: %s", path, mailbox.ErrnoText(err)))
		return
	}
	switch {
	case !fi.Mode().IsRegular():
		rq.add(a.rcpt, "5.3.5", fmt.Sprintf("cannot open include file %s: not a regular file", path))
		return
	case fi.Mode().Perm()&0o002 != 0:
		rq.add(a.rcpt, "5.7.1", fmt.Sprintf("cannot open include file %s: file is world writable", path))
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		rq.add(a.rcpt, mailbox.DSNFor(err, "4.3.0"), fmt.Sprintf("cannot open include file %s: %s", path, mailbox.ErrnoText(err)))
		return
	}
	b := a
	b.level++
	b.context = "include"
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && os.Geteuid() == 0 {
		if u := rq.userByID(int(st.Uid)); u != nil {
			b.priv = u
		}
	}
	rq.expand(ctx, b, string(data))
}

func (rq *request) userByID(uid int) *User {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return nil
	}
	lu, _ := rq.t.cfg.LookupUser(u.Username)
	return lu
}

// dotForward expands the user's first existing forward_path file. An empty
// file means no forwarding.
func (rq *request) dotForward(ctx context.Context, a attr, u *User, lp, ext string) bool {
	t := rq.t
	vars := rq.vars(a, u, lp, u.Name, ext)
	for _, item := range t.cfg.ForwardPath {
		path := strings.TrimSpace(t.expand(item, vars))
		if path == "" || !filepath.IsAbs(path) {
			continue
		}
		fi, err := os.Lstat(path)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if rq.seen("forward-file " + path) {
			return false
		}
		data, err := os.ReadFile(path)
		if err != nil {
			rq.add(a.rcpt, "4.3.0", fmt.Sprintf("cannot open forward file %s: %s", path, mailbox.ErrnoText(err)))
			return true
		}
		if len(splitItems(string(data))) == 0 {
			return false
		}
		b := a
		b.level++
		b.context, b.priv = "forward", u
		if os.Geteuid() != 0 {
			b.priv = nil
		}
		rq.expand(ctx, b, string(data))
		return true
	}
	return false
}

// forward resubmits the collected addresses, one new message per sender
// and Delivered-To, with a Delivered-To: header for loop detection.
func (rq *request) forward(ctx context.Context) {
	t := rq.t
	for _, g := range rq.fwd {
		if rq.d.VerifyOnly {
			// A probe is not forwarded: the addresses count as
			// deliverable, as local(8) reports them.
			for _, addr := range g.addrs {
				rq.add(addr, "2.0.0", "forwards to "+addr)
			}
			continue
		}
		if t.cfg.Submit == nil {
			for _, addr := range g.addrs {
				rq.add(addr, "4.3.5", "mail forwarding is not configured")
			}
			continue
		}
		body, err := rq.d.Open(ctx)
		if err != nil {
			for _, addr := range g.addrs {
				rq.add(addr, "4.3.0", "cannot read message content: "+err.Error())
			}
			continue
		}
		var prefix bytes.Buffer
		if slices.Contains(t.cfg.PrependDelivered, "forward") {
			fmt.Fprintf(&prefix, "Delivered-To: %s\r\n", strings.ToLower(g.delivered))
		}
		env := &envelope.Envelope{Sender: g.sender, Internal: true, BodyType: rq.d.BodyType,
			SMTPUTF8: rq.d.SMTPUTF8, EnvID: rq.d.EnvID, Ret: rq.d.Ret}
		for _, addr := range g.addrs {
			env.Recipients = append(env.Recipients, envelope.Recipient{Address: addr, Orig: rq.orig(), Notify: rq.r.Notify, ORCPT: rq.r.ORCPT})
		}
		id, err := t.cfg.Submit(ctx, env, io.MultiReader(&prefix, body))
		body.Close()
		for _, addr := range g.addrs {
			if err != nil {
				rq.add(addr, "4.3.0", "cannot forward mail: "+err.Error())
			} else {
				rq.add(addr, "2.0.0", "forwarded as "+id)
			}
		}
	}
}
