// Package cleanup is the last stage before the queue, Postfix's cleanup(8):
// it rewrites envelope addresses (standard form, canonical maps,
// masquerading, virtual alias expansion, duplicate elimination — reference
// §6.B), applies header_checks, adds the headers Postfix adds (Received, and
// Message-Id, Date and From when missing), and enqueues the message in one
// short transaction. It streams the body: only the header block is held in
// memory.
package cleanup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"sqlmta/mapdrivers"
	"sqlmta/mtad/envelope"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/queueid"
	"sqlmta/mtad/reply"
	"sqlmta/store"
)

// Config is what cleanup reads from main.cf.
type Config struct {
	Hostname        string // myhostname
	MailName        string // mail_name, shown in Received
	HeaderSizeLimit int    // header_size_limit: beyond it the rest is body
	// AlwaysAddMissing is always_add_missing_headers. When false, missing
	// headers are added only for local clients, as Postfix does with its
	// default local_header_rewrite_clients = permit_inet_interfaces.
	AlwaysAddMissing bool
	// LocalAddrs are this host's interface addresses (permit_inet_interfaces).
	LocalAddrs []netip.Addr
	Qualify    func(addr string) string // trivial-rewrite standard form (rewrite.Resolver.Qualify)

	// IsLocalDomain says whether an address in domain may be looked up by
	// its bare localpart in canonical and virtual tables: the domain is
	// $myorigin or local (rewrite.Resolver.LocalpartLookup).
	IsLocalDomain func(domain string) bool
	// OpenMap opens a "type:name" table (mapdrivers/open.Opener.Open). It
	// is called per message, so it should cache.
	OpenMap func(ctx context.Context, spec string) (mapdrivers.Map, error)

	// The tables of each parameter, as "type:name" items.
	CanonicalMaps          []string // canonical_maps
	SenderCanonicalMaps    []string // sender_canonical_maps
	RecipientCanonicalMaps []string // recipient_canonical_maps
	VirtualAliasMaps       []string // virtual_alias_maps
	HeaderChecks           []string // header_checks
	BodyChecks             []string // body_checks
	MimeHeaderChecks       []string // mime_header_checks (main.cf's default is $header_checks)
	NestedHeaderChecks     []string // nested_header_checks (main.cf's default is $header_checks)
	// DisableMimeInput is disable_mime_input_processing: the body is all
	// body lines, and mime_header_checks and nested_header_checks are unused.
	DisableMimeInput bool
	// BodyChecksSizeLimit is body_checks_size_limit: how much of the
	// body is inspected (0 = 51200 bytes).
	BodyChecksSizeLimit int64

	// Which addresses each canonical parameter rewrites: envelope_sender,
	// envelope_recipient, header_sender, header_recipient. Unlike Postfix
	// there is no default here: pass main.cf's value (config.List).
	CanonicalClasses          []string // canonical_classes
	SenderCanonicalClasses    []string // sender_canonical_classes
	RecipientCanonicalClasses []string // recipient_canonical_classes

	MasqueradeDomains    []string // masquerade_domains, "!domain" exempts
	MasqueradeExceptions []string // masquerade_exceptions: localparts
	MasqueradeClasses    []string // masquerade_classes

	RecipientDelimiter           string   // recipient_delimiter
	PropagateUnmatchedExtensions []string // propagate_unmatched_extensions: canonical, virtual
	EmptyAddressRecipient        string   // empty_address_recipient; "" is MAILER-DAEMON

	// Virtual alias limits; 0 is Postfix's default of 1000.
	VirtualAliasRecursionLimit     int // virtual_alias_recursion_limit
	VirtualAliasExpansionLimit     int // virtual_alias_expansion_limit
	VirtualAliasAddressLengthLimit int // virtual_alias_address_length_limit
	// DuplicateFilterLimit bounds the memory of the recipient duplicate
	// filter (duplicate_filter_limit); 0 means no limit, as in Postfix.
	DuplicateFilterLimit int

	// ContentFilter is content_filter, "transport:nexthop" ("" = none).
	// FILTER actions override it; a master.cf service's -o value goes
	// through Service.
	ContentFilter string
	AlwaysBcc     string // always_bcc
	// ReceiveOverrideOptions is main.cf's receive_override_options (what
	// pickup's mail gets; smtpd services may have their own, WithOverrides).
	ReceiveOverrideOptions []string
	// QueueRunDelay (queue_run_delay) dates new mail's first due time that
	// far back, so the qmgr claims it before deferred mail that became due
	// since, and deferred mail waits at most that long behind new mail.
	QueueRunDelay    time.Duration
	SenderBccMaps    []string // sender_bcc_maps
	RecipientBccMaps []string // recipient_bcc_maps
	// MessageDropHeaders is message_drop_headers: header names removed
	// after header_checks. nil means Postfix's default.
	MessageDropHeaders []string

	// LocalHeaderRewriteClients is local_header_rewrite_clients: the
	// clients whose headers are rewritten in the local context (and get
	// missing headers). nil means Postfix's default, permit_inet_interfaces.
	LocalHeaderRewriteClients []string
	MyNetworks                func(netip.Addr) bool // mynetworks, for permit_mynetworks
	// RemoteHeaderRewriteDomain is remote_header_rewrite_domain: other
	// clients' headers are rewritten only when it is set, with
	// QualifyRemote (standard form appending this domain).
	RemoteHeaderRewriteDomain string
	QualifyRemote             func(addr string) string
}

// defaultDropHeaders is message_drop_headers' default.
var defaultDropHeaders = []string{"bcc", "content-length", "resent-bcc", "return-path"}

// Cleanup enqueues messages. It implements smtpd.Submitter.
type Cleanup struct {
	cfg   Config
	store store.Store
	log   *maillog.Logger
	now   func() time.Time
	// Enqueued is called after each successful commit (the local qmgr's
	// wake-up); may be nil.
	Enqueued func()
}

// Service is cleanup as one master.cf service sees it. Postfix's smtpd
// hands cleanup its own content_filter and header rewrite context, so a
// service's -o overrides of content_filter and
// local_header_rewrite_clients count for that service's mail only.
type Service struct {
	c    *Cleanup
	opts serviceOpts
}

type serviceOpts struct {
	contentFilter string
	headerClients []string
	overrides     []string // receive_override_options
}

func (o serviceOpts) has(option string) bool { return slices.Contains(o.overrides, option) }

// Service returns a Submitter that uses contentFilter and
// localHeaderRewriteClients (nil: the Config's) in place of main.cf's.
func (c *Cleanup) Service(contentFilter string, localHeaderRewriteClients []string) *Service {
	if localHeaderRewriteClients == nil {
		localHeaderRewriteClients = c.cfg.LocalHeaderRewriteClients
	}
	return &Service{c: c, opts: serviceOpts{contentFilter: contentFilter, headerClients: localHeaderRewriteClients,
		overrides: c.cfg.ReceiveOverrideOptions}}
}

// WithOverrides returns the service with a service's own
// receive_override_options (smtpd -o in master.cf) in place of main.cf's.
func (s *Service) WithOverrides(options []string) *Service {
	o := s.opts
	o.overrides = options
	return &Service{c: s.c, opts: o}
}

// Submit is Cleanup.Submit with the service's parameters.
func (s *Service) Submit(ctx context.Context, env *envelope.Envelope, content io.Reader) error {
	return s.c.submit(ctx, env, content, s.opts)
}

// New returns a Cleanup writing to st.
func New(cfg Config, st store.Store, log *maillog.Logger) *Cleanup {
	if cfg.HeaderSizeLimit <= 0 {
		cfg.HeaderSizeLimit = 102400
	}
	if cfg.MailName == "" {
		cfg.MailName = "Postfix"
	}
	for _, l := range []*int{&cfg.VirtualAliasRecursionLimit, &cfg.VirtualAliasExpansionLimit, &cfg.VirtualAliasAddressLengthLimit} {
		if *l <= 0 {
			*l = 1000
		}
	}
	if cfg.EmptyAddressRecipient == "" {
		cfg.EmptyAddressRecipient = "MAILER-DAEMON"
	}
	if cfg.MessageDropHeaders == nil {
		cfg.MessageDropHeaders = defaultDropHeaders
	}
	if cfg.LocalHeaderRewriteClients == nil {
		cfg.LocalHeaderRewriteClients = []string{"permit_inet_interfaces"}
	}
	return &Cleanup{cfg: cfg, store: st, log: log, now: time.Now}
}

// queueWriteError is Postfix's reply when the queue file cannot be written.
var queueWriteError = reply.New(451, "4.3.0", "Error: queue file write error")

// tables are the lookup tables of one message, opened.
type tables struct {
	senderCanon, recipientCanon, canon, virtual, headerChecks, bodyChecks *maps
	mimeChecks, nestedChecks                                              *maps
	senderBcc, recipientBcc                                               *maps
	noMasquerade                                                          bool
}

func (c *Cleanup) openTables(ctx context.Context) (*tables, error) {
	var t tables
	var err error
	for _, p := range []struct {
		dst   **maps
		title string
		specs []string
	}{
		{&t.senderCanon, "sender_canonical_maps", c.cfg.SenderCanonicalMaps},
		{&t.recipientCanon, "recipient_canonical_maps", c.cfg.RecipientCanonicalMaps},
		{&t.canon, "canonical_maps", c.cfg.CanonicalMaps},
		{&t.virtual, "virtual_alias_maps", c.cfg.VirtualAliasMaps},
		{&t.headerChecks, "header_checks", c.cfg.HeaderChecks},
		{&t.bodyChecks, "body_checks", c.cfg.BodyChecks},
		{&t.mimeChecks, "mime_header_checks", c.cfg.MimeHeaderChecks},
		{&t.nestedChecks, "nested_header_checks", c.cfg.NestedHeaderChecks},
		{&t.senderBcc, "sender_bcc_maps", c.cfg.SenderBccMaps},
		{&t.recipientBcc, "recipient_bcc_maps", c.cfg.RecipientBccMaps},
	} {
		if *p.dst, err = c.openMaps(ctx, p.title, p.specs); err != nil {
			return nil, err
		}
	}
	return &t, nil
}

// rewriteSender is cleanup_addr_sender: standard form, MAILER-DAEMON@$myorigin
// to the null sender, sender_canonical_maps, canonical_maps, masquerading.
func (c *Cleanup) rewriteSender(ctx context.Context, st *state, t *tables, addr string) string {
	addr = c.qualify(addr)
	if len(addr) > len("MAILER-DAEMON@") && strings.EqualFold(addr[:len("MAILER-DAEMON@")], "MAILER-DAEMON@") &&
		strings.EqualFold(addr, c.qualify("MAILER-DAEMON")) {
		addr = ""
	}
	if hasClass(c.cfg.SenderCanonicalClasses, "envelope_sender") {
		addr = c.map11(ctx, st, t.senderCanon, addr)
	}
	if hasClass(c.cfg.CanonicalClasses, "envelope_sender") {
		addr = c.map11(ctx, st, t.canon, addr)
	}
	if !t.noMasquerade && hasClass(c.cfg.MasqueradeClasses, "envelope_sender") {
		addr = c.masquerade(addr)
	}
	return addr
}

// rewriteRecipient is cleanup_addr_recipient up to virtual expansion:
// standard form, recipient_canonical_maps, canonical_maps, masquerading.
func (c *Cleanup) rewriteRecipient(ctx context.Context, st *state, t *tables, addr string) string {
	if addr == "" {
		addr = c.cfg.EmptyAddressRecipient
	}
	addr = c.qualify(addr)
	if hasClass(c.cfg.RecipientCanonicalClasses, "envelope_recipient") {
		addr = c.map11(ctx, st, t.recipientCanon, addr)
	}
	if hasClass(c.cfg.CanonicalClasses, "envelope_recipient") {
		addr = c.map11(ctx, st, t.canon, addr)
	}
	if !t.noMasquerade && hasClass(c.cfg.MasqueradeClasses, "envelope_recipient") {
		addr = c.masquerade(addr)
	}
	return addr
}

// dupFilter is cleanup's been_here table for recipients: case-insensitive,
// and once it holds limit entries it stops remembering new ones (so later
// duplicates get through, as in Postfix), which bounds its memory.
type dupFilter struct {
	limit int
	seen  map[string]bool
}

func (d *dupFilter) check(key string) bool {
	key = strings.ToLower(key)
	if d.seen[key] {
		return true
	}
	if d.limit <= 0 || len(d.seen) < d.limit {
		d.seen[key] = true
	}
	return false
}

// Submit runs cleanup on one message and enqueues it. It returns nil only
// after the store committed, or when header_checks discarded the message
// (Postfix answers 250 for that too).
func (c *Cleanup) Submit(ctx context.Context, env *envelope.Envelope, content io.Reader) error {
	return c.submit(ctx, env, content, serviceOpts{contentFilter: c.cfg.ContentFilter, headerClients: c.cfg.LocalHeaderRewriteClients,
		overrides: c.cfg.ReceiveOverrideOptions})
}

func (c *Cleanup) submit(ctx context.Context, env *envelope.Envelope, content io.Reader, opts serviceOpts) error {
	if env.QueueID == "" {
		env.QueueID = queueid.New()
	}
	if env.Arrival.IsZero() {
		env.Arrival = c.now()
	}
	br := bufio.NewReaderSize(content, 64*1024)
	hdr, err := readHeader(br, c.cfg.HeaderSizeLimit)
	if err != nil {
		return queueWriteError.Wrap(err)
	}
	t, err := c.openTables(ctx)
	if err != nil {
		c.log.Printf("cleanup", "warning: %s: %v -- message not accepted, try again later", env.QueueID, err)
		return queueWriteError.Wrap(err)
	}
	// receive_override_options: after a content filter the mail was mapped
	// already (no_address_mappings: canonical, masquerading, virtual
	// aliases and automatic BCC), and checked (no_header_body_checks).
	noMappings := opts.has("no_address_mappings")
	if noMappings {
		t.senderCanon, t.recipientCanon, t.canon, t.virtual, t.senderBcc, t.recipientBcc = nil, nil, nil, nil, nil, nil
		t.noMasquerade = true
	}
	if opts.has("no_header_body_checks") {
		t.headerChecks, t.bodyChecks, t.mimeChecks, t.nestedChecks = nil, nil, nil, nil
	}
	st := &state{queueID: env.QueueID}
	sender := c.rewriteSender(ctx, st, t, env.Sender)
	st.sender = sender
	m := &store.NewMessage{
		QueueID:    env.QueueID,
		Sender:     sender,
		Arrival:    env.Arrival,
		ClientName: env.ClientName,
		ClientAddr: env.ClientAddr,
		Helo:       env.Helo,
		Protocol:   env.Protocol,
		BodyType:   env.BodyType,
		SMTPUTF8:   env.SMTPUTF8,
		EnvID:      env.EnvID,
		Ret:        env.Ret,

		VerifyProbe: env.VerifyProbe,
	}
	if c.cfg.QueueRunDelay > 0 {
		m.Due = c.now().Add(-c.cfg.QueueRunDelay)
	}
	dups := &dupFilter{limit: c.cfg.DuplicateFilterLimit, seen: make(map[string]bool, len(env.Recipients))}
	// out is cleanup_out_recipient: virtual alias expansion of a rewritten
	// address, then duplicate elimination.
	out := func(addr string, r envelope.Recipient) {
		final := []string{addr}
		if t.virtual != nil {
			final = c.map1n(ctx, st, t.virtual, addr)
		}
		// Duplicate elimination keyed as with enable_original_recipient =
		// yes: a missing ORCPT counts as "rfc822;" plus the address before
		// virtual expansion, as cleanup_addr.c fills it in.
		orcpt := r.ORCPT
		if orcpt == "" {
			orcpt = "rfc822;" + addr
		}
		orig := r.Orig
		if orig == "" {
			orig = r.Address
		}
		for _, f := range final {
			if dups.check(orcpt + "\n" + r.Notify + "\n" + orig + "\n" + f) {
				continue
			}
			m.Recipients = append(m.Recipients, store.NewRecipient{Address: f, Orig: r.Orig, Notify: r.Notify, ORCPT: r.ORCPT})
		}
	}
	// bcc is cleanup_addr_bcc: a recipient the sender is not told about
	// (NOTIFY=NEVER), rewritten like any envelope recipient.
	bcc := func(a string) {
		out(c.rewriteRecipient(ctx, st, t, a), envelope.Recipient{Address: a, Orig: a, Notify: "NEVER"})
	}
	// Automatic BCC is for new mail only (CLEANUP_FLAG_BCC_OK).
	autoBcc := !env.Internal && !noMappings
	if autoBcc && sender != "" {
		c.bccLookup(ctx, st, t.senderBcc, sender, bcc)
	}
	for _, r := range env.Recipients {
		addr := c.rewriteRecipient(ctx, st, t, r.Address)
		st.recip = addr
		out(addr, r)
		if autoBcc && addr != "" {
			c.bccLookup(ctx, st, t.recipientBcc, addr, bcc)
		}
	}
	// smtpd's BCC actions reach cleanup as extra recipients.
	for _, a := range env.Bcc {
		bcc(a)
	}
	if autoBcc && c.cfg.AlwaysBcc != "" {
		bcc(c.cfg.AlwaysBcc)
	}

	now := c.now()
	var received, bottom bytes.Buffer
	c.writeReceived(&received, env, now)
	// Postfix's own Received header is part of the content cleanup reads,
	// so header_checks see it too.
	// smtpd writes the headers its access maps PREPENDed before its own
	// Received header (smtpd.c data_cmd).
	var own [][]byte
	for _, p := range env.Prepend {
		own = append(own, []byte(p+"\r\n"))
	}
	own = append(own, received.Bytes())
	fields := c.headerChecks(ctx, st, env, t.headerChecks, append(own, hdr.fields...))
	if r := st.reply(); r != nil {
		return r
	}
	// body_checks and the MIME header checks read the body once, before
	// anything is queued, so that what they decide (REJECT, HOLD,
	// REDIRECT, …) applies to the message as queued; the body goes to a
	// spool on the way.
	var body io.Reader = br
	mimeChecks := !c.cfg.DisableMimeInput && (t.mimeChecks != nil || t.nestedChecks != nil)
	if (t.bodyChecks != nil || mimeChecks) && !st.discard && !st.passed {
		checked, done, err := c.contentChecks(ctx, st, env, t, hdr.fields, br)
		if err != nil {
			return queueWriteError.Wrap(err)
		}
		defer done()
		if r := st.reply(); r != nil {
			return r
		}
		body = checked
	}
	if st.discard || env.Discard {
		return nil // smtpd's DISCARD was logged by smtpd
	}
	for _, a := range st.bcc {
		bcc(a)
	}
	if r := st.reply(); r != nil {
		return r // a BCC address's expansion failed
	}
	if len(m.Recipients) == 0 {
		return reply.New(554, "5.5.1", "Error: no valid recipients")
	}
	c.applyActions(m, env, st, opts.contentFilter)
	if t.headerChecks != nil {
		hdr.messageID, hdr.hasDate, hdr.hasFrom = scanFields(fields)
	}
	rs := scanResent(fields)
	qualify := c.headerQualifier(ctx, env, opts.headerClients)
	fields = c.finishHeaders(ctx, &hdrRewrite{qualify: qualify, st: st, t: t}, fields)
	if r := st.reply(); r != nil {
		return r // a canonical lookup failed
	}
	addMissing := c.cfg.AlwaysAddMissing || qualify != nil
	m.MessageID = hdr.messageID
	// With Resent- headers present, the missing headers are the Resent-
	// ones (cleanup_header_done_callback).
	prefix, hasMID, hasDate, hasFrom := "", hdr.messageID != "", hdr.hasDate, hdr.hasFrom
	if rs.resent {
		prefix, hasMID, hasDate, hasFrom = "Resent-", rs.messageID, rs.date, rs.from
	}
	var resentMID string
	if !hasMID && addMissing {
		id := fmt.Sprintf("<%s.%s@%s>", now.UTC().Format("20060102150405"), env.QueueID, c.cfg.Hostname)
		if rs.resent {
			resentMID = id
		} else {
			m.MessageID = id
		}
		fmt.Fprintf(&bottom, "%sMessage-Id: %s\r\n", prefix, id)
	}
	if !hasDate && addMissing {
		fmt.Fprintf(&bottom, "%sDate: %s\r\n", prefix, now.Format("Mon, 2 Jan 2006 15:04:05 -0700 (MST)"))
	}
	if !hasFrom && addMissing {
		from := sender
		if from == "" {
			from = "MAILER-DAEMON"
		}
		fmt.Fprintf(&bottom, "%sFrom: %s\r\n", prefix, from)
	}
	m.Content = io.MultiReader(bytes.NewReader(bytes.Join(fields, nil)), &bottom, body)

	for try := 0; ; try++ {
		err = c.store.Enqueue(ctx, m)
		if !errors.Is(err, store.ErrDuplicateID) || try == 3 {
			break
		}
		// Another node drew the same ID: take a new one. Content was
		// not consumed, since the insert of the message row failed first.
		env.QueueID = queueid.New()
		m.QueueID = env.QueueID
	}
	if err != nil {
		if re := reply.As(err); re != nil {
			return re
		}
		return queueWriteError.Wrap(err)
	}
	if resentMID != "" {
		c.log.Printf("cleanup", "%s: resent-message-id=%s", env.QueueID, resentMID)
	}
	mid := m.MessageID
	if mid == "" {
		mid = "<>"
	}
	c.log.Printf("cleanup", "%s: message-id=%s", env.QueueID, mid)
	if c.Enqueued != nil {
		c.Enqueued()
	}
	return nil
}

// reply is smtpd's answer to cleanup's status, in smtpd's order of
// precedence (smtpd.c data_cmd, cleanup_strerror.c): a deferral with its
// reason, then rejected content, then "queue file write error".
func (st *state) reply() *reply.Error {
	withReason := func(code int, dsn, text string) *reply.Error {
		if st.reason != "" {
			dsn, text, _ = strings.Cut(st.reason, " ")
		} else {
			text = "Error: " + text
		}
		return reply.New(code, dsn, text)
	}
	switch {
	case st.errs&statDefer != 0:
		return withReason(451, "4.7.1", "service unavailable")
	case st.errs&statCont != 0:
		return withReason(550, "5.7.1", "message content rejected")
	case st.errs&statWrite != 0:
		return queueWriteError
	}
	return nil
}

func (c *Cleanup) qualify(addr string) string {
	if c.cfg.Qualify == nil {
		return addr
	}
	return c.cfg.Qualify(addr)
}

func (c *Cleanup) isLocalClient(addr string) bool {
	if addr == "" {
		return true // local submission (pickup)
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	if a.IsLoopback() {
		return true
	}
	for _, l := range c.cfg.LocalAddrs {
		if l == a.Unmap() {
			return true
		}
	}
	return false
}

// writeReceived writes the Received header Postfix's smtpd, pickup or
// post_mail would write.
func (c *Cleanup) writeReceived(w *bytes.Buffer, env *envelope.Envelope, now time.Time) {
	proto := env.Protocol
	if proto == "" {
		proto = "local"
	}
	// RFC 3848's names for the transmission type.
	if env.TLS {
		proto += "S"
	}
	if env.SASLUser != "" {
		proto += "A"
	}
	if env.ClientAddr != "" {
		helo := env.Helo
		if helo == "" {
			helo = env.ClientName
		}
		name := env.ClientName
		if name == "" {
			name = "unknown"
		}
		fmt.Fprintf(w, "Received: from %s (%s [%s])\r\n", helo, name, env.ClientAddr)
		if env.SASLUser != "" && env.SASLHeader {
			fmt.Fprintf(w, "\t(Authenticated sender: %s)\r\n", env.SASLUser)
		}
		fmt.Fprintf(w, "\tby %s (%s) with %s id %s", c.cfg.Hostname, c.cfg.MailName, proto, env.QueueID)
		// smtpd names the recipient when the client gave exactly one, as given.
		if len(env.Recipients) == 1 {
			fmt.Fprintf(w, "\r\n\tfor <%s>", env.Recipients[0].Address)
		}
	} else {
		// pickup.c names the file owner's uid and dates the header by the
		// file; mail the system posts itself (post_mail.c) names neither.
		if env.UID != "" {
			fmt.Fprintf(w, "Received: by %s (%s, from userid %s)\r\n\tid %s", c.cfg.Hostname, c.cfg.MailName, env.UID, env.QueueID)
			if !env.Arrival.IsZero() {
				now = env.Arrival
			}
		} else {
			fmt.Fprintf(w, "Received: by %s (%s)\r\n\tid %s", c.cfg.Hostname, c.cfg.MailName, env.QueueID)
		}
	}
	fmt.Fprintf(w, "; %s\r\n", now.Format("Mon, 2 Jan 2006 15:04:05 -0700 (MST)"))
}

// header is what cleanup learned from the primary header block.
type header struct {
	raw       []byte   // the header lines as received, CRLF-terminated
	fields    [][]byte // raw split into header fields, continuation lines included
	messageID string
	hasDate   bool
	hasFrom   bool
}

// readHeader reads the primary header block: header lines and their
// continuations, up to (not including) the empty line or the first line
// that is not a header. At most limit bytes count as header.
func readHeader(br *bufio.Reader, limit int) (*header, error) {
	h := &header{}
	var cur string // current header, unfolded, for inspection
	flush := func() {
		name, value, ok := strings.Cut(cur, ":")
		if !ok {
			return
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "message-id":
			h.messageID = value
		case "date":
			h.hasDate = true
		case "from":
			h.hasFrom = true
		}
	}
	midLine := false // the previous chunk was part of a line longer than the buffer
	for len(h.raw) < limit {
		full, err := peekLine(br)
		if len(full) == 0 {
			if err != nil && err != io.EOF {
				return nil, err
			}
			break
		}
		if !midLine {
			first := full[0]
			if first == '\r' || first == '\n' {
				break // end of headers: the blank line stays with the body
			}
			isCont := first == ' ' || first == '\t'
			if (!isCont && !isHeaderLine(full)) || (isCont && cur == "") {
				break
			}
			if !isCont {
				flush()
				cur = ""
				h.fields = append(h.fields, nil)
			}
		}
		h.fields[len(h.fields)-1] = append(h.fields[len(h.fields)-1], full...)
		midLine = full[len(full)-1] != '\n'
		cur += strings.TrimRight(string(full), "\r\n")
		h.raw = append(h.raw, full...)
		if _, err := br.Discard(len(full)); err != nil {
			return nil, err
		}
	}
	flush()
	return h, nil
}

// scanFields finds what readHeader finds, in header fields that
// header_checks may have changed.
func scanFields(fields [][]byte) (messageID string, hasDate, hasFrom bool) {
	for _, f := range fields {
		name, value, ok := strings.Cut(logicalHeader(f), ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "message-id":
			if messageID == "" {
				messageID = strings.TrimSpace(strings.ReplaceAll(value, "\n", ""))
			}
		case "date":
			hasDate = true
		case "from":
			hasFrom = true
		}
	}
	return messageID, hasDate, hasFrom
}

// peekLine returns the next line (with its line end) without consuming it;
// a line longer than the buffer is returned in part.
func peekLine(br *bufio.Reader) ([]byte, error) {
	for n := 1; ; n++ {
		b, err := br.Peek(min(n*512, br.Size()))
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			return b[:i+1], nil
		}
		if err != nil || len(b) == br.Size() {
			if err == io.EOF && len(b) > 0 {
				return b, nil
			}
			return b, err
		}
	}
}

// isHeaderLine reports whether line starts with "name:", name being
// printable ASCII without space or colon (RFC 5322 field-name).
func isHeaderLine(line []byte) bool {
	for i, ch := range line {
		if ch == ':' {
			return i > 0
		}
		if ch <= ' ' || ch > '~' {
			return false
		}
	}
	return false
}
