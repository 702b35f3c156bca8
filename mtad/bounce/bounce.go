// Package bounce is Postfix's bounce(8) and defer(8): it returns undeliverable
// mail to its sender, warns senders of delayed mail, and sends the postmaster
// the copies notify_classes asks for. Every notice is an RFC 3464 delivery
// status notification laid out the way Postfix lays it out (reference §10),
// enqueued through cleanup like any other mail.
package bounce

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"sqlmta/mtad/envelope"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/queueid"
	"sqlmta/mtad/transport"
	"sqlmta/store"
)

// Submitter is cleanup.
type Submitter interface {
	Submit(ctx context.Context, env *envelope.Envelope, content io.Reader) error
}

// Bouncer builds and enqueues delivery status notices. It implements
// qmgr.Bouncer and qmgr.DelayWarner.
type Bouncer struct {
	Hostname  string // myhostname
	SizeLimit int64  // bounce_size_limit: a larger original is returned as headers only
	// MaxQueueLifetime (maximal_queue_lifetime) and DelayWarningTime
	// (delay_warning_time) go into the text of delay warnings and their
	// Will-Retry-Until field.
	MaxQueueLifetime time.Duration
	DelayWarningTime time.Duration
	// NotifyClasses is notify_classes: "bounce", "2bounce" and "delay" send
	// the postmaster copies below.
	NotifyClasses []string
	// Where postmaster copies go: bounce_notice_recipient (copies of
	// bounces), 2bounce_notice_recipient (bounces that cannot be delivered)
	// and delay_notice_recipient (copies of delay warnings).
	BounceNoticeRecipient    string
	TwoBounceNoticeRecipient string
	DelayNoticeRecipient     string
	// DoubleBounceSender (double_bounce_sender) is the envelope sender of
	// postmaster copies; a notice to it is discarded, never sent.
	DoubleBounceSender string
	Store              store.Store
	Submit             Submitter
	Log                *maillog.Logger
	Now                func() time.Time
}

// kind is which report a notice is: Postfix's failure or delay template.
type kind int

const (
	failure kind = iota
	delay
)

// Bounce returns the recipients, grouped per message, to their senders. It
// is Postfix's bounce_notify_service: the sender gets a notice listing the
// recipients whose NOTIFY asks for failures (or that have none); with
// notify_classes "bounce" the postmaster gets a copy with the headers of the
// original; a bounce of a bounce (null sender) goes to the postmaster when
// notify_classes has "bounce" or "2bounce" and is dropped otherwise.
func (b *Bouncer) Bounce(ctx context.Context, rcpts []store.ClaimedRecipient, results []transport.Result) error {
	return b.each(ctx, failure, rcpts, results)
}

// DelayWarn tells senders that mail is delayed, grouped per message: Postfix's
// defer(8) warning at delay_warning_time, for recipients whose NOTIFY asks for
// delays (or that have none), with a copy to the postmaster when
// notify_classes has "delay". Delayed mail with the null sender warns only
// the postmaster, and only then.
func (b *Bouncer) DelayWarn(ctx context.Context, rcpts []store.ClaimedRecipient, results []transport.Result) error {
	return b.each(ctx, delay, rcpts, results)
}

func (b *Bouncer) each(ctx context.Context, k kind, rcpts []store.ClaimedRecipient, results []transport.Result) error {
	type group struct {
		rcpts   []store.ClaimedRecipient
		results []transport.Result
	}
	var order []string
	groups := map[string]*group{}
	for i, r := range rcpts {
		g := groups[r.QueueID]
		if g == nil {
			g = &group{}
			groups[r.QueueID] = g
			order = append(order, r.QueueID)
		}
		g.rcpts = append(g.rcpts, r)
		g.results = append(g.results, results[i])
	}
	var errs []error
	for _, id := range order {
		g := groups[id]
		if err := b.notify(ctx, k, g.rcpts, g.results); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", k.noun(), id, err))
		}
	}
	return errors.Join(errs...)
}

func (k kind) noun() string {
	if k == delay {
		return "delay warning"
	}
	return "bounce"
}

// notice is one message to write: to whom, from whom, which recipients.
type notice struct {
	kind        kind
	postmaster  bool // a postmaster copy: its own subject, no boilerplate
	from, to    string
	rcpts       []store.ClaimedRecipient
	results     []transport.Result
	headersOnly bool
	what        string // for the log: "sender non-delivery notification", …
}

// source is the message a notice is about and how to read its content.
type source struct {
	*store.Message
	open        func() (io.ReadCloser, error)
	headersOnly bool // too big, or content cleanup refused: only its headers go back
}

// notify sends the notices about one queued message's recipients.
func (b *Bouncer) notify(ctx context.Context, k kind, rcpts []store.ClaimedRecipient, results []transport.Result) error {
	first := rcpts[0]
	if b.discardDoubleBounce(first.Sender, first.QueueID) {
		return nil
	}
	msg, err := b.Store.MessageGet(ctx, first.QueueID)
	if err != nil {
		return err
	}
	if k == delay {
		rcpts, results = withOtherDeferrals(msg, rcpts, results)
	}
	open := func() (io.ReadCloser, error) { return b.Store.ContentOpen(ctx, msg.QueueID) }
	return b.notifyAbout(ctx, k, source{Message: msg, open: open, headersOnly: b.SizeLimit > 0 && msg.Size > b.SizeLimit}, rcpts, results)
}

// discardDoubleBounce reports whether mail from sender is a postmaster copy (double_bounce_sender),
// which is never returned: no triple bounce.
func (b *Bouncer) discardDoubleBounce(sender, queueID string) bool {
	if !b.isDoubleBounce(sender) {
		return false
	}
	b.Log.Printf("bounce", "warning: %s: undeliverable postmaster notification discarded", queueID)
	return true
}

// Rejected returns to its sender mail that cleanup refused for good before it was queued: Postfix's
// cleanup_bounce, which pickup asks for (CLEANUP_FLAG_BOUNCE) because a local sender has no SMTP reply
// to read. Every recipient fails with dsn and text; the notice carries the original's headers only, as
// Postfix's does for rejected content. content is read once, up to the end of its headers.
func (b *Bouncer) Rejected(ctx context.Context, env *envelope.Envelope, content io.Reader, dsn, text string) error {
	if b.discardDoubleBounce(env.Sender, env.QueueID) {
		return nil
	}
	head, err := io.ReadAll(headerBlock(content))
	if err != nil {
		return err
	}
	msg := &store.Message{QueueID: env.QueueID, Sender: env.Sender, Arrival: env.Arrival, EnvID: env.EnvID,
		Ret: env.Ret, MessageID: headerValue(head, "Message-Id")}
	var rcpts []store.ClaimedRecipient
	var results []transport.Result
	for _, r := range env.Recipients {
		rcpts = append(rcpts, store.ClaimedRecipient{QueueID: env.QueueID, Address: r.Address, Orig: r.Orig,
			Notify: r.Notify, ORCPT: r.ORCPT, Sender: env.Sender, Arrival: env.Arrival})
		results = append(results, transport.Result{Status: transport.Bounced, DSN: dsn, Text: text, Relay: "none"})
	}
	if len(rcpts) == 0 {
		return nil
	}
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(head)), nil }
	err = b.notifyAbout(ctx, failure, source{Message: msg, open: open, headersOnly: true}, rcpts, results)
	if err != nil {
		return fmt.Errorf("bounce %s: %w", env.QueueID, err)
	}
	return nil
}

// headerValue is the first name: header's value in a header block (unfolded).
func headerValue(head []byte, name string) string {
	for _, line := range strings.Split(string(head), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// notifyAbout sends the notices about msg's recipients.
func (b *Bouncer) notifyAbout(ctx context.Context, k kind, msg source, rcpts []store.ClaimedRecipient, results []transport.Result) error {
	first := rcpts[0]
	copyClass, copyTo, pmWhat, senderWhat := "bounce", b.BounceNoticeRecipient, "postmaster non-delivery notification", "sender non-delivery notification"
	if k == delay {
		copyClass, copyTo, pmWhat, senderWhat = "delay", b.DelayNoticeRecipient, "postmaster delay notification", "sender delay notification"
	}
	if first.Sender == "" {
		// Postfix's double bounce: every recipient, the whole original
		// (a delay warning: its headers), to the postmaster.
		switch {
		case k == failure && (b.notifies("bounce") || b.notifies("2bounce")):
			copyTo = b.TwoBounceNoticeRecipient
		case k == delay && b.notifies("delay"):
		default:
			return nil
		}
		return b.send(ctx, msg, notice{kind: k, postmaster: true, from: b.doubleBounce(), to: or(copyTo, "postmaster"),
			rcpts: rcpts, results: results, headersOnly: k == delay || msg.headersOnly, what: pmWhat})
	}
	event := "FAILURE"
	if k == delay {
		event = "DELAY"
	}
	var sel []store.ClaimedRecipient
	var selRes []transport.Result
	for i, r := range rcpts {
		if wants(r.Notify, event) {
			sel = append(sel, r)
			selRes = append(selRes, results[i])
		}
	}
	if len(sel) > 0 {
		headersOnly := k == delay || strings.EqualFold(msg.Ret, "HDRS") || msg.headersOnly
		if err := b.send(ctx, msg, notice{kind: k, from: "", to: first.Sender, rcpts: sel, results: selRes,
			headersOnly: headersOnly, what: senderWhat}); err != nil {
			return err
		}
	}
	if b.notifies(copyClass) {
		// Not critical: a failed copy is logged, and the sender's notice
		// stands.
		err := b.send(ctx, msg, notice{kind: k, postmaster: true, from: b.doubleBounce(), to: or(copyTo, "postmaster"),
			rcpts: rcpts, results: results, headersOnly: true, what: pmWhat})
		if err != nil {
			b.Log.Printf("bounce", "warning: %s: postmaster notice failed while bouncing to %s: %v", first.QueueID, first.Sender, err)
		}
	}
	return nil
}

// send writes one notice and submits it to cleanup.
func (b *Bouncer) send(ctx context.Context, msg source, n notice) error {
	now := time.Now()
	if b.Now != nil {
		now = b.Now()
	}
	newID := queueid.New()
	head := b.report(msg.Message, n, now, newID)
	content, err := msg.open()
	if err != nil {
		return err
	}
	defer content.Close()
	var orig io.Reader = content
	if n.headersOnly {
		orig = headerBlock(content)
	}
	tail := fmt.Sprintf("\r\n--%s--\r\n", boundary(msg.QueueID, now, b.Hostname))
	env := &envelope.Envelope{
		QueueID:    newID,
		Sender:     n.from,
		Recipients: []envelope.Recipient{{Address: n.to, Orig: n.to}},
		Arrival:    now,
		Internal:   true, // no always_bcc or bcc maps on a notice
	}
	if err := b.Submit.Submit(ctx, env, io.MultiReader(bytes.NewReader(head), orig, strings.NewReader(tail))); err != nil {
		return err
	}
	b.Log.Printf("bounce", "%s: %s: %s", msg.QueueID, n.what, env.QueueID)
	return nil
}

func boundary(queueID string, now time.Time, hostname string) string {
	return fmt.Sprintf("%s.%d/%s", queueID, now.Unix(), hostname)
}

// mailDate is Postfix's mail_date: RFC 5322 with the zone name in a comment.
const mailDate = "Mon, _2 Jan 2006 15:04:05 -0700 (MST)"

// report is everything up to the original message's content: headers, the
// notification, the delivery report and the head of the third part (with
// its Return-Path line).
func (b *Bouncer) report(msg *store.Message, n notice, now time.Time, newID string) []byte {
	bound := boundary(msg.QueueID, now, b.Hostname)
	var m bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&m, format+"\r\n", args...) }
	wrap := func(s string) {
		for _, line := range lineWrap(s, 79, 4) {
			w("%s", line)
		}
	}
	subject := "Undelivered Mail Returned to Sender"
	switch {
	case n.kind == failure && n.postmaster:
		subject = "Postmaster Copy: Undelivered Mail"
	case n.kind == delay && n.postmaster:
		subject = "Postmaster Warning: Delayed Mail"
	case n.kind == delay:
		subject = "Delayed Mail (still being retried)"
	}
	w("From: Mail Delivery System <MAILER-DAEMON@%s>", b.Hostname)
	w("Subject: %s", subject)
	w("To: %s", n.to)
	if msg.MessageID != "" {
		w("References: %s", msg.MessageID)
		w("In-Reply-To: %s", msg.MessageID)
	}
	if n.postmaster {
		w("Auto-Submitted: auto-generated")
	} else {
		w("Auto-Submitted: auto-replied")
	}
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"", bound)
	w("Content-Transfer-Encoding: 8bit")
	w("Message-Id: <%s.%s@%s>", now.UTC().Format("20060102150405"), newID, b.Hostname)
	w("")
	w("This is a MIME-encapsulated message.")
	w("")
	w("--%s", bound)
	w("Content-Description: Notification")
	w("Content-Type: text/plain; charset=us-ascii")
	w("")
	if !n.postmaster {
		// Postmaster copies carry no boilerplate (bounce_notify_service.c).
		for _, line := range b.boilerplate(n.kind) {
			w("%s", line)
		}
	}
	for i, r := range n.rcpts {
		w("")
		if orig := expandedFrom(r); orig != "" {
			wrap(fmt.Sprintf("<%s> (expanded from <%s>): %s", r.Address, orig, n.results[i].Text))
		} else {
			wrap(fmt.Sprintf("<%s>: %s", r.Address, n.results[i].Text))
		}
	}
	w("")
	w("--%s", bound)
	w("Content-Description: Delivery report")
	w("Content-Type: message/delivery-status")
	w("")
	w("Reporting-MTA: dns; %s", b.Hostname)
	if msg.EnvID != "" {
		w("Original-Envelope-Id: %s", msg.EnvID)
	}
	w("X-Postfix-Queue-ID: %s", msg.QueueID)
	if msg.Sender != "" {
		w("X-Postfix-Sender: rfc822; %s", msg.Sender)
	}
	w("Arrival-Date: %s", msg.Arrival.Local().Format(mailDate))
	for i, r := range n.rcpts {
		res := n.results[i]
		w("")
		w("Final-Recipient: rfc822; %s", r.Address)
		switch {
		case r.ORCPT != "":
			w("Original-Recipient: %s", r.ORCPT)
		case r.Orig != "":
			w("Original-Recipient: rfc822; %s", r.Orig)
		default:
			w("Original-Recipient: rfc822; %s", r.Address)
		}
		action := "failed"
		if n.kind == delay {
			action = "delayed"
		}
		w("Action: %s", action)
		// The status as the delivery agent reported it: an expired
		// message's recipients keep their 4.X.Y, as in Postfix.
		w("Status: %s", status(res.DSN, n.kind))
		if host, said, ok := remoteDiagnostic(res.Text); ok {
			wrap("Remote-MTA: dns; " + host)
			wrap("Diagnostic-Code: smtp; " + said)
		} else {
			wrap("Diagnostic-Code: X-Postfix; " + res.Text)
		}
		if n.kind == delay {
			w("Will-Retry-Until: %s", msg.Arrival.Add(b.MaxQueueLifetime).Local().Format(mailDate))
		}
	}
	w("")
	w("--%s", bound)
	if n.headersOnly {
		w("Content-Description: Undelivered Message Headers")
		w("Content-Type: text/rfc822-headers")
	} else {
		w("Content-Description: Undelivered Message")
		w("Content-Type: message/rfc822")
	}
	w("")
	w("Return-Path: <%s>", msg.Sender)
	return m.Bytes()
}

// boilerplate is the text of Postfix's built-in failure and delay templates
// (bounce_templates.c), $name expanded as bounce_template.c does: a time
// parameter with a _hours or _days suffix is its value in that unit,
// rounded down.
func (b *Bouncer) boilerplate(k kind) []string {
	lines := []string{"This is the mail system at host " + b.Hostname + ".", ""}
	if k == failure {
		lines = append(lines,
			"I'm sorry to have to inform you that your message could not",
			"be delivered to one or more recipients. It's attached below.")
	} else {
		lines = append(lines,
			"####################################################################",
			"# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #",
			"####################################################################",
			"",
			fmt.Sprintf("Your message could not be delivered for more than %d hour(s).", int64(b.DelayWarningTime/time.Hour)),
			fmt.Sprintf("It will be retried until it is %d day(s) old.", int64(b.MaxQueueLifetime/(24*time.Hour))))
	}
	return append(lines,
		"",
		"For further assistance, please send mail to postmaster.",
		"",
		"If you do so, please include this problem report. You can",
		"delete your own text from the attached returned message.",
		"",
		"                   The mail system")
}

// status is the Status field: the agent's code, or a generic one of the
// report's class when it gave none.
func status(dsn string, k kind) string {
	if dsn != "" {
		return dsn
	}
	if k == delay {
		return "4.0.0"
	}
	return "5.0.0"
}

// expandedFrom is the original address a recipient was expanded from, when
// it differs from the recipient ("" otherwise).
func expandedFrom(r store.ClaimedRecipient) string {
	if r.Orig != "" && !strings.EqualFold(r.Orig, r.Address) {
		return r.Orig
	}
	return ""
}

// wants reports whether DSN NOTIFY asks for event ("FAILURE", "DELAY"): no
// NOTIFY means FAILURE and DELAY (RFC 3461 §4.1, Postfix's compatibility
// default), NEVER means nothing.
func wants(notify, event string) bool {
	if notify == "" {
		return true
	}
	for _, kw := range strings.Split(notify, ",") {
		if strings.EqualFold(strings.TrimSpace(kw), event) {
			return true
		}
	}
	return false
}

// notifies reports whether notify_classes holds class.
func (b *Bouncer) notifies(class string) bool {
	for _, c := range b.NotifyClasses {
		if strings.EqualFold(strings.TrimSpace(c), class) {
			return true
		}
	}
	return false
}

func (b *Bouncer) doubleBounce() string { return or(b.DoubleBounceSender, "double-bounce") }

// isDoubleBounce reports whether addr is double_bounce_sender, qualified or
// not (cleanup qualifies it with myorigin).
func (b *Bouncer) isDoubleBounce(addr string) bool {
	if addr == "" {
		return false
	}
	local := addr
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		local = addr[:i]
	}
	return strings.EqualFold(local, b.doubleBounce())
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// lineWrap is Postfix's line_wrap as bounce_print_wrap calls it: lines of at
// most width columns, broken at blanks; continuation lines are indented by
// indent, and a word longer than a line is left whole.
func lineWrap(s string, width, indent int) []string {
	var out []string
	cur := 0 // the current line's indent
	for {
		room := width - cur
		if len(s) <= room {
			break
		}
		// The last blank at or before room, else the first after it.
		cut := strings.LastIndexAny(s[:room+1], " \t")
		if cut <= 0 {
			cut = strings.IndexAny(s, " \t")
			if cut < 0 {
				break
			}
		}
		out = append(out, strings.Repeat(" ", cur)+strings.TrimRight(s[:cut], " \t"))
		s = strings.TrimLeft(s[cut:], " \t")
		if s == "" {
			return out
		}
		cur = min(indent, width/2)
	}
	return append(out, strings.Repeat(" ", cur)+strings.TrimRight(s, " \t"))
}

// remoteDiagnostic picks the host and reply out of Postfix's wording
// "host NAME[ADDR] said: REPLY (in reply to CMD command)".
func remoteDiagnostic(text string) (host, said string, ok bool) {
	rest, found := strings.CutPrefix(text, "host ")
	if !found {
		return "", "", false
	}
	hostPart, reply, found := strings.Cut(rest, " said: ")
	if !found {
		return "", "", false
	}
	if i := strings.IndexByte(hostPart, '['); i > 0 {
		hostPart = hostPart[:i]
	}
	if i := strings.LastIndex(reply, " (in reply to "); i > 0 {
		reply = reply[:i]
	}
	return hostPart, reply, true
}

// headerBlock returns a reader of r's header lines only.
func headerBlock(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	var out bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
		out.Write(line)
		if err != nil {
			break
		}
	}
	return &out
}

// withOtherDeferrals adds to a delay warning the message's other deferred
// recipients with their last reasons. Postfix's warning lists every
// recipient of the message deferred in the queue run (its defer logfile);
// here a message's recipients come back in separate batches of outcomes,
// so the ones written earlier are read from the queue.
func withOtherDeferrals(msg *store.Message, rcpts []store.ClaimedRecipient, results []transport.Result) ([]store.ClaimedRecipient, []transport.Result) {
	have := make(map[int64]bool, len(rcpts))
	for _, r := range rcpts {
		have[r.ID] = true
	}
	first := rcpts[0]
	for _, r := range msg.Recipients {
		if have[r.ID] || r.State != store.StateDeferred || r.LastReason == "" {
			continue
		}
		c := first
		c.ID, c.Address, c.Orig, c.Notify, c.ORCPT, c.Domain = r.ID, r.Address, r.Orig, r.Notify, r.ORCPT, r.Domain
		c.Attempts, c.LastReason = r.Attempts, r.LastReason
		rcpts = append(rcpts, c)
		results = append(results, transport.Result{RecipientID: r.ID, Status: transport.Deferred,
			DSN: reasonDSN(r.LastReason), Text: r.LastReason})
	}
	return rcpts, results
}

// enhancedIn finds a 4.X.Y status code in a deferral reason ("host … said:
// 450 4.2.0 …").
var enhancedIn = regexp.MustCompile(`(?:^|\s)(4\.\d{1,3}\.\d{1,3})(?:\s|$)`)

// reasonDSN is the status a stored deferral reason carries, or "" (which
// a delay notice shows as 4.0.0).
func reasonDSN(reason string) string {
	if m := enhancedIn.FindStringSubmatch(reason); m != nil {
		return m[1]
	}
	return ""
}
