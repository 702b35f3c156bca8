// Package pipe is Postfix's pipe(8) delivery agent: a master.cf service
// runs an external command per delivery request, with ${recipient} and
// friends expanded in its argv, the message on its input (with the
// envelope lines its flags ask for), as the service's user=, and maps the
// exit status per sysexits.h.
package pipe

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"sqlmta/mtad/transport"
	"sqlmta/mtad/transport/mailbox"
)

// Config is one pipe service.
type Config struct {
	Name       string   // transport name: relay= in the log
	Argv       []string // argv=, unexpanded
	Flags      string   // flags=
	User       string   // user=: "name" or "name:group"
	NullSender string   // null_sender=; "" for the null sender stays ""
	// RecipientLimit is <name>_destination_recipient_limit: recipients per
	// command run; 0 = all of a delivery request.
	RecipientLimit int
	TimeLimit      time.Duration // <name>_time_limit
	Env            []string      // export_environment values
}

// Transport runs one pipe service. It is safe for concurrent use.
type Transport struct {
	cfg           Config
	uid, gid      int
	resolveErr    error
	flags         mailbox.Flags
	fold, foldDom bool
	quote         bool
}

var _ transport.Transport = (*Transport)(nil)

// New returns the transport for cfg. A user= that cannot be resolved, or
// is root, defers every delivery with the reason.
func New(cfg Config) *Transport {
	t := &Transport{cfg: cfg}
	for _, c := range cfg.Flags {
		switch c {
		case 'F':
			t.flags |= mailbox.From
		case 'R':
			t.flags |= mailbox.ReturnPath
		case 'D':
			t.flags |= mailbox.Delivered
		case 'O':
			t.flags |= mailbox.OrigRcpt
		case 'B':
			t.flags |= mailbox.Blank
		case '.':
			t.flags |= mailbox.Dot
		case '>':
			t.flags |= mailbox.Quote
		case 'u':
			t.fold = true
		case 'h':
			t.foldDom = true
		case 'q':
			t.quote = true
		}
	}
	t.uid, t.gid, t.resolveErr = resolveUser(cfg.User)
	return t
}

func resolveUser(spec string) (uid, gid int, err error) {
	name, group, _ := strings.Cut(spec, ":")
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("unknown user= attribute %q: %v", name, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return 0, 0, fmt.Errorf("unknown group in user= attribute %q: %v", group, err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	if uid == 0 || gid == 0 {
		return 0, 0, fmt.Errorf("user= attribute %q: privileged user or group", spec)
	}
	return uid, gid, nil
}

// Deliver implements transport.Transport: one command run per batch of at
// most RecipientLimit recipients; each recipient of a batch gets its result.
func (t *Transport) Deliver(ctx context.Context, d *transport.Delivery) []transport.Result {
	var res []transport.Result
	rcpts := d.Recipients
	for len(rcpts) > 0 {
		n := len(rcpts)
		if t.cfg.RecipientLimit > 0 {
			n = min(n, t.cfg.RecipientLimit)
		}
		start := time.Now()
		dsn, text := t.run(ctx, d, rcpts[:n])
		for _, r := range rcpts[:n] {
			res = append(res, transport.Result{RecipientID: r.ID, Status: transport.StatusForDSN(dsn), DSN: dsn, Text: text,
				Relay: t.cfg.Name, Transmit: time.Since(start)})
		}
		rcpts = rcpts[n:]
	}
	return res
}

func (t *Transport) run(ctx context.Context, d *transport.Delivery, rcpts []transport.Recipient) (dsn, text string) {
	if t.resolveErr != nil && os.Geteuid() == 0 {
		return "4.3.5", "mail system configuration error: " + t.resolveErr.Error()
	}
	argv := t.expand(d, rcpts)
	sender := d.Sender
	if sender == "" {
		sender = t.cfg.NullSender
	}
	orig := rcpts[0].Orig
	if orig == "" {
		orig = rcpts[0].Address
	}
	env := mailbox.Envelope{Sender: d.Sender, OrigRcpt: orig, Delivered: rcpts[0].Address}
	c := &mailbox.Command{Argv: argv, Env: append(append([]string{}, t.cfg.Env...), "PATH=/usr/bin:/bin"),
		TimeLimit: t.cfg.TimeLimit, Dir: "/"}
	if os.Geteuid() == 0 {
		c.UID, c.GID, c.Setuid = t.uid, t.gid, true
	}
	err := c.Run(ctx, func(w io.Writer) error {
		body, err := d.Open(ctx)
		if err != nil {
			return &mailbox.ReadError{Err: err}
		}
		defer body.Close()
		return mailbox.Copy(ctx, w, t.flags, env, body)
	})
	if err != nil {
		if me, ok := err.(*mailbox.Error); ok {
			return me.DSN, me.Text
		}
		return "4.3.0", err.Error()
	}
	return "2.0.0", "delivered via " + t.cfg.Name + " service"
}

// perRecipient macros make an argument repeat once per recipient.
var perRecipient = []string{"recipient", "original_recipient", "user", "extension", "mailbox", "domain"}

// expand substitutes ${name} (and $name) in argv. An argument with a
// per-recipient macro becomes one argument per recipient, as pipe(8) does.
func (t *Transport) expand(d *transport.Delivery, rcpts []transport.Recipient) []string {
	sender := d.Sender
	if sender == "" {
		sender = t.cfg.NullSender
	}
	nexthop := d.Nexthop
	if t.foldDom {
		nexthop = strings.ToLower(nexthop)
	}
	common := map[string]string{
		"sender": t.quoteAddr(sender), "nexthop": nexthop, "size": strconv.FormatInt(d.Size, 10),
		"queue_id": d.QueueID, "client_address": "", "client_hostname": "", "client_helo": "",
		"client_protocol": "", "client_port": "", "sasl_method": "", "sasl_username": "", "sasl_sender": "",
	}
	var out []string
	for _, arg := range t.cfg.Argv {
		if !hasAny(arg, perRecipient) {
			out = append(out, subst(arg, common))
			continue
		}
		for _, r := range rcpts {
			vars := map[string]string{}
			for k, v := range common {
				vars[k] = v
			}
			addr := r.Address
			local, domain := addr, ""
			if i := strings.LastIndexByte(addr, '@'); i >= 0 {
				local, domain = addr[:i], addr[i+1:]
			}
			if t.fold {
				local = strings.ToLower(local)
			}
			if t.foldDom {
				domain = strings.ToLower(domain)
			}
			user, ext := local, ""
			if i := strings.IndexByte(local, '+'); i > 0 {
				user, ext = local[:i], local[i+1:]
			}
			rcpt := local
			if domain != "" {
				rcpt += "@" + domain
			}
			orig := r.Orig
			if orig == "" {
				orig = r.Address
			}
			vars["recipient"], vars["original_recipient"] = t.quoteAddr(rcpt), t.quoteAddr(orig)
			vars["user"], vars["extension"], vars["mailbox"], vars["domain"] = user, ext, local, domain
			out = append(out, subst(arg, vars))
		}
	}
	return out
}

// quoteAddr quotes a localpart with special characters (flag q).
func (t *Transport) quoteAddr(addr string) string {
	if !t.quote {
		return addr
	}
	i := strings.LastIndexByte(addr, '@')
	local := addr
	if i >= 0 {
		local = addr[:i]
	}
	if local == "" || !strings.ContainsAny(local, " \"(),:;<>@[\\]") {
		return addr
	}
	q := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(local) + `"`
	if i >= 0 {
		return q + addr[i:]
	}
	return q
}

func hasAny(arg string, names []string) bool {
	for _, n := range names {
		if strings.Contains(arg, "${"+n+"}") || strings.Contains(arg, "$"+n) {
			return true
		}
	}
	return false
}

// subst replaces ${name} and $name; unknown names expand to "".
func subst(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		if s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		var name string
		if s[i+1] == '{' || s[i+1] == '(' {
			close := byte('}')
			if s[i+1] == '(' {
				close = ')'
			}
			j := strings.IndexByte(s[i+2:], close)
			if j < 0 {
				b.WriteString(s[i:])
				break
			}
			name = s[i+2 : i+2+j]
			i += 2 + j
		} else {
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			name = s[i+1 : j]
			i = j - 1
		}
		b.WriteString(vars[name])
	}
	return b.String()
}
