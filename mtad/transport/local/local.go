// Package local is Postfix's local(8) delivery agent (reference §6.C): per
// recipient it expands alias_maps (addresses, /file, |command, :include:,
// owner- lists), the user's .forward, then delivers to mailbox_transport,
// mailbox_command, home_mailbox (mbox or Maildir) or the mail spool; an
// unknown user goes to fallback_transport or luser_relay, else bounces.
// Expansion results for other transports are resubmitted through cleanup as
// one new message ("forwarded as NEWID").
package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"sqlmta/mapdrivers"
	"sqlmta/mtad/envelope"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/transport"
	"sqlmta/mtad/transport/mailbox"
)

// User is a local account (getpwnam).
type User struct {
	Name, Home, Shell string
	UID, GID          int
}

// Config is what local reads from main.cf, plus its seams to the node.
type Config struct {
	Hostname string // myhostname: Maildir file names

	AliasMaps []string // alias_maps, "type:name" items
	// AliasMapsDefault marks AliasMaps as main.cf's default rather than
	// the operator's choice: a table that cannot be read (hash:/etc/aliases
	// never imported) is then skipped with a warning instead of deferring
	// all local mail.
	AliasMapsDefault bool
	Warnf            func(format string, args ...any)
	OpenMap          func(ctx context.Context, spec string) (mapdrivers.Map, error)
	ForwardPath      []string // forward_path items, unexpanded
	// Expand expands $name in a template with vars first, then main.cf
	// (config.Config.ExpandWith); nil leaves templates as they are.
	Expand func(template string, vars map[string]string) (string, error)

	AllowMailToCommands []string // allow_mail_to_commands: alias, forward, include
	AllowMailToFiles    []string // allow_mail_to_files
	OwnerRequestSpecial bool     // owner_request_special
	ExpandOwnerAlias    bool     // expand_owner_alias
	RecipientDelimiter  string   // recipient_delimiter
	PrependDelivered    []string // prepend_delivered_header: command, file, forward
	DefaultPrivs        string   // default_privs: alias commands and files run as this user
	ExportEnvironment   []string // export_environment
	LocalCommandShell   string   // local_command_shell
	CommandTimeLimit    time.Duration

	MailboxCommand     string // mailbox_command
	HomeMailbox        string // home_mailbox
	MailSpoolDirectory string // mail_spool_directory
	MailboxLocks       mailbox.Locks
	MailboxSizeLimit   int64 // mailbox_size_limit
	LuserRelay         string
	// MailboxTransport and FallbackTransport, when set, take the mailbox
	// and unknown-user deliveries with the given next hops.
	MailboxTransport, FallbackTransport transport.Transport
	MailboxNexthop, FallbackNexthop     string
	DuplicateFilterLimit                int // duplicate_filter_limit; 0 = none
	MaxLevel                            int // alias nesting limit; default 100

	// IsLocal says whether an address resolves to this transport; other
	// addresses are forwarded.
	IsLocal func(addr string) bool
	// Qualify puts an address in standard form (user → user@$myorigin).
	Qualify func(addr string) string
	// Submit resubmits forwarded mail through cleanup and returns the new
	// queue ID.
	Submit func(ctx context.Context, env *envelope.Envelope, content io.Reader) (string, error)
	// LookupUser finds an account; (nil, nil) when there is none. Nil:
	// the system's password database.
	LookupUser func(name string) (*User, error)

	// Log receives the lines of deliveries that alias or .forward
	// expansion produced (to=<final>, orig_to=<recipient>); nil: none.
	Log     *maillog.Logger
	Service string // service name in those lines; default "local"
}

// Transport is the local delivery agent. It is safe for concurrent use.
type Transport struct {
	cfg    Config
	md     *mailbox.Maildir
	warned sync.Map // default alias tables already warned about
}

var _ transport.Transport = (*Transport)(nil)

// New returns a Transport.
func New(cfg Config) *Transport {
	if cfg.MaxLevel <= 0 {
		cfg.MaxLevel = 100
	}
	if cfg.Service == "" {
		cfg.Service = "local"
	}
	if cfg.LookupUser == nil {
		cfg.LookupUser = SystemUser
	}
	if cfg.Qualify == nil {
		cfg.Qualify = func(a string) string { return a }
	}
	if cfg.IsLocal == nil {
		cfg.IsLocal = func(string) bool { return true }
	}
	return &Transport{cfg: cfg, md: mailbox.NewMaildir(cfg.Hostname)}
}

// SystemUser looks name up in the password database.
func SystemUser(name string) (*User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return nil, nil
		}
		return nil, err
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user %q has a non-numeric uid or gid", name)
	}
	return &User{Name: u.Username, Home: u.HomeDir, Shell: loginShell(u.Username), UID: uid, GID: gid}, nil
}

// loginShell reads the shell field, which os/user does not expose.
func loginShell(name string) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(sc.Text(), ":")
		if len(p) == 7 && p[0] == name {
			return p[6]
		}
	}
	return ""
}

// Verifies marks the transport as one that handles address verification
// probes (transport.Verifier): aliases, .forward files and the user are
// looked up, and every final delivery is reported without being made.
func (t *Transport) Verifies() {}

// Deliver implements transport.Transport: each recipient separately, as
// local_destination_recipient_limit = 1 has it.
func (t *Transport) Deliver(ctx context.Context, d *transport.Delivery) []transport.Result {
	res := make([]transport.Result, len(d.Recipients))
	loops, herr := deliveredTo(ctx, d)
	for i, r := range d.Recipients {
		start := time.Now()
		if herr != nil {
			res[i] = transport.Result{RecipientID: r.ID, Status: transport.Deferred, DSN: "4.3.0", Relay: "local", Text: herr.Error()}
			continue
		}
		rq := &request{t: t, d: d, r: r, loops: loops, dups: map[string]bool{}, start: start}
		res[i] = rq.run(ctx)
		res[i].RecipientID = r.ID
		res[i].Transmit = time.Since(start)
	}
	return res
}

// deliveredTo collects the message's Delivered-To: values (lowercased) for
// loop detection.
func deliveredTo(ctx context.Context, d *transport.Delivery) (map[string]bool, error) {
	body, err := d.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot read message content: %v", err)
	}
	defer body.Close()
	hdr, err := textproto.NewReader(bufio.NewReader(body)).ReadMIMEHeader()
	if err != nil && len(hdr) == 0 && !errors.Is(err, io.EOF) {
		// A malformed header block has no Delivered-To we could trust.
		return map[string]bool{}, nil
	}
	out := map[string]bool{}
	for _, v := range hdr.Values("Delivered-To") {
		out[strings.ToLower(strings.TrimSpace(v))] = true
	}
	return out, nil
}

// leaf is one final delivery of an expansion.
type leaf struct {
	to     string
	status transport.Status
	dsn    string
	text   string
	relay  string
}

// attr is the delivery context of one address (Postfix's DELIVER_ATTR).
type attr struct {
	level  int
	rcpt   string // the address being delivered
	sender string
	// delivered is Delivered-To: the queued recipient, at every level of
	// expansion (as Postfix writes it).
	delivered string
	context   string // "", "alias", "forward" or "include": where the address came from
	priv      *User  // commands and files run as this user
	mailOnly  bool   // \user or a self-reference: mailbox only
	owner     bool   // an owner- alias changed the sender: resubmit local results too
}

// request is the delivery of one queued recipient.
type request struct {
	t     *Transport
	d     *transport.Delivery
	r     transport.Recipient
	loops map[string]bool
	dups  map[string]bool
	start time.Time

	leaves []leaf
	fwd    []*fwdGroup
}

type fwdGroup struct {
	sender, delivered string
	addrs             []string
}

func (rq *request) orig() string {
	if rq.r.Orig != "" {
		return rq.r.Orig
	}
	return rq.r.Address
}

func (rq *request) run(ctx context.Context) transport.Result {
	rq.recipient(ctx, attr{rcpt: rq.r.Address, sender: rq.d.Sender, delivered: rq.r.Address})
	rq.forward(ctx)
	if len(rq.leaves) == 0 {
		// Everything was a duplicate, or an empty .forward list: done.
		return transport.Result{Status: transport.Sent, DSN: "2.0.0", Relay: "local", Text: "delivered"}
	}
	expanded := len(rq.leaves) > 1 || !strings.EqualFold(rq.leaves[0].to, rq.r.Address)
	if expanded {
		rq.logLeaves()
	}
	// The queued recipient is deferred if any final delivery was, else
	// bounced if any was, else sent.
	pick := rq.leaves[len(rq.leaves)-1]
	for _, st := range []transport.Status{transport.Deferred, transport.Bounced} {
		if i := slices.IndexFunc(rq.leaves, func(l leaf) bool { return l.status == st }); i >= 0 {
			pick = rq.leaves[i]
			break
		}
	}
	return transport.Result{Status: pick.status, DSN: pick.dsn, Text: pick.text, Relay: pick.relay,
		Logged: expanded && rq.t.cfg.Log != nil}
}

// logLeaves writes one line per final delivery, as local(8) does for
// expanded addresses.
func (rq *request) logLeaves() {
	if rq.t.cfg.Log == nil {
		return
	}
	now := time.Now()
	total, delays := maillog.Delays(now.Sub(rq.d.Arrival), max(rq.start.Sub(rq.d.Arrival), 0), 0, 0, now.Sub(rq.start))
	orig := rq.orig()
	for _, l := range rq.leaves {
		o := ""
		if !strings.EqualFold(orig, l.to) {
			o = fmt.Sprintf(", orig_to=<%s>", orig)
		}
		status := l.status.LogWord(rq.d.VerifyOnly)
		rq.t.cfg.Log.Printf(rq.t.cfg.Service, "%s: to=<%s>%s, relay=%s, delay=%s, delays=%s, dsn=%s, status=%s (%s)",
			rq.d.QueueID, l.to, o, l.relay, total, delays, l.dsn, status, l.text)
	}
}

func (rq *request) add(to string, dsn, text string) {
	rq.leaves = append(rq.leaves, leaf{to: to, status: transport.StatusForDSN(dsn), dsn: dsn, text: text, relay: "local"})
}

func (rq *request) fail(to string, err error) {
	var me *mailbox.Error
	if errors.As(err, &me) {
		rq.add(to, me.DSN, me.Text)
		return
	}
	rq.add(to, "4.3.0", err.Error())
}

// seen is the local duplicate filter: one delivery per mailbox, file,
// command, include file, .forward and forwarded address per request.
func (rq *request) seen(key string) bool {
	if rq.dups[key] {
		return true
	}
	if lim := rq.t.cfg.DuplicateFilterLimit; lim == 0 || len(rq.dups) < lim {
		rq.dups[key] = true
	}
	return false
}

// splitAddr returns the localpart and the domain of addr.
func splitAddr(addr string) (local, domain string) {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[:i], addr[i+1:]
	}
	return addr, ""
}

// splitExt splits user+ext on the first recipient delimiter character.
func (t *Transport) splitExt(local string) (user, ext string) {
	if t.cfg.RecipientDelimiter == "" {
		return local, ""
	}
	if i := strings.IndexAny(local, t.cfg.RecipientDelimiter); i > 0 {
		return local[:i], local[i+1:]
	}
	return local, ""
}

// recipient is deliver_recipient(): loop checks, aliases, .forward,
// mailbox, unknown user.
func (rq *request) recipient(ctx context.Context, a attr) {
	t := rq.t
	if a.level > t.cfg.MaxLevel {
		rq.add(a.rcpt, "5.4.6", "alias database loop for "+a.rcpt)
		return
	}
	if rq.loops[strings.ToLower(a.rcpt)] {
		rq.add(a.rcpt, "5.4.6", "mail forwarding loop for "+a.rcpt)
		return
	}
	localpart, _ := splitAddr(a.rcpt)
	lp := strings.ToLower(localpart)
	if strings.HasPrefix(lp, `\`) {
		lp, a.mailOnly = lp[1:], true
	}
	name, ext := t.splitExt(lp)
	if !a.mailOnly {
		if done := rq.alias(ctx, a, lp, name); done {
			return
		}
	}
	u, err := t.cfg.LookupUser(name)
	if err != nil {
		rq.add(a.rcpt, "4.3.0", fmt.Sprintf("user lookup for %q failed: %v", name, err))
		return
	}
	if u != nil && !a.mailOnly {
		if done := rq.dotForward(ctx, a, u, lp, ext); done {
			return
		}
	}
	// mailbox_transport takes the mailbox before the account check, so
	// that its users need no system account (local(8) deliver_mailbox).
	if t.cfg.MailboxTransport != nil {
		if !rq.seen("mailbox " + name) {
			rq.via(ctx, a, t.cfg.MailboxTransport, t.cfg.MailboxNexthop)
		}
		return
	}
	if u == nil {
		rq.unknown(ctx, a, lp, name, ext)
		return
	}
	rq.mailbox(ctx, a, u, lp, ext)
}

// alias looks up the full localpart, then without the extension, and
// expands the first match. It reports whether it handled the address.
func (rq *request) alias(ctx context.Context, a attr, lp, name string) bool {
	t := rq.t
	keys := []string{lp}
	if name != lp {
		keys = append(keys, name)
	}
	for _, key := range keys {
		for _, spec := range t.cfg.AliasMaps {
			m, err := t.cfg.OpenMap(ctx, spec)
			var val string
			var found bool
			if err == nil {
				val, found, err = m.Lookup(ctx, key)
			}
			if err != nil && t.cfg.AliasMapsDefault {
				if _, dup := t.warned.LoadOrStore(spec, true); !dup && t.cfg.Warnf != nil {
					t.cfg.Warnf("alias_maps (default) %s: %v -- skipped", spec, err)
				}
				continue
			}
			if err != nil {
				rq.add(a.rcpt, "4.3.0", fmt.Sprintf("alias database unavailable: %s: %v", spec, err))
				return true
			}
			if !found {
				continue
			}
			_, domain := splitAddr(a.rcpt)
			b := a
			b.context = "alias"
			b.priv = rq.defaultPrivs()
			// An owner-name alias makes owner-name@domain the sender of
			// the list's mail, so that bounces go to the list owner.
			if t.cfg.OwnerRequestSpecial && !strings.HasPrefix(key, "owner-") {
				if _, ok, err := m.Lookup(ctx, "owner-"+key); err == nil && ok {
					b.sender = "owner-" + key
					if domain != "" {
						b.sender += "@" + domain
					}
					b.owner = true
				}
			}
			rq.expand(ctx, b, val)
			return true
		}
	}
	return false
}

func (rq *request) defaultPrivs() *User {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := rq.t.cfg.LookupUser(cmpOr(rq.t.cfg.DefaultPrivs, "nobody"))
	if err != nil || u == nil {
		return &User{Name: "nobody", Home: "/", UID: 65534, GID: 65534}
	}
	return u
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// unknown handles a recipient with no alias and no account:
// fallback_transport, then luser_relay, then a bounce.
func (rq *request) unknown(ctx context.Context, a attr, lp, name, ext string) {
	t := rq.t
	if t.cfg.FallbackTransport != nil {
		rq.via(ctx, a, t.cfg.FallbackTransport, t.cfg.FallbackNexthop)
		return
	}
	if t.cfg.LuserRelay != "" {
		relay := t.expand(t.cfg.LuserRelay, rq.vars(a, nil, lp, name, ext))
		if relay != "" {
			addr := t.cfg.Qualify(relay)
			if strings.EqualFold(addr, a.rcpt) {
				rq.add(a.rcpt, "5.1.1", fmt.Sprintf("unknown user: %q", name))
				return
			}
			b := a
			b.level++
			b.rcpt = addr
			rq.address(ctx, b, addr)
			return
		}
	}
	rq.add(a.rcpt, "5.1.1", fmt.Sprintf("unknown user: %q", name))
}

// via hands one address to another transport (mailbox_transport,
// fallback_transport) and takes its result.
func (rq *request) via(ctx context.Context, a attr, tr transport.Transport, nexthop string) {
	if _, ok := tr.(transport.Verifier); rq.d.VerifyOnly && !ok {
		// Never hand a probe to a transport that would deliver it.
		rq.add(a.rcpt, "2.0.0", "delivers via its mailbox or fallback transport")
		return
	}
	dd := *rq.d
	dd.Sender = a.sender
	dd.Nexthop = nexthop
	dd.Recipients = []transport.Recipient{{ID: rq.r.ID, Address: a.rcpt, Orig: rq.orig(), Notify: rq.r.Notify, ORCPT: rq.r.ORCPT}}
	rs := tr.Deliver(ctx, &dd)
	if len(rs) != 1 {
		rq.add(a.rcpt, "4.3.0", "mail transport returned no result")
		return
	}
	rq.leaves = append(rq.leaves, leaf{to: a.rcpt, status: rs[0].Status, dsn: rs[0].DSN, text: rs[0].Text, relay: rs[0].Relay})
}

// vars are the $names of forward_path, luser_relay and mailbox_command,
// and (upper-cased) the command environment.
func (rq *request) vars(a attr, u *User, lp, name, ext string) map[string]string {
	_, domain := splitAddr(a.rcpt)
	v := map[string]string{
		"user": name, "local": lp, "extension": ext, "domain": domain,
		"recipient": a.rcpt, "recipient_delimiter": rq.t.cfg.RecipientDelimiter,
		"sender": a.sender,
	}
	if u != nil {
		v["home"], v["shell"], v["user"] = u.Home, u.Shell, u.Name
	}
	return v
}

func (t *Transport) expand(tmpl string, vars map[string]string) string {
	if t.cfg.Expand == nil {
		return tmpl
	}
	s, err := t.cfg.Expand(tmpl, vars)
	if err != nil {
		return ""
	}
	return s
}
