package bounce

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"sqlmta/internal/teststore"
	"sqlmta/mtad/envelope"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/transport"
	"sqlmta/store"
)

// submitted is one notice as cleanup would have received it.
type submitted struct {
	env  *envelope.Envelope
	data []byte
}

// capture is a Submitter that keeps what it is given.
type capture struct {
	mu   sync.Mutex
	got  []submitted
	fail error
}

func (c *capture) Submit(_ context.Context, env *envelope.Envelope, content io.Reader) error {
	b, err := io.ReadAll(content)
	if err != nil {
		return err
	}
	if c.fail != nil {
		return c.fail
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, submitted{env: env, data: b})
	return nil
}

const original = "From: Alice <alice@example.org>\r\nSubject: lunch\r\nMessage-Id: <m1@example.org>\r\n\r\nsee you at noon\r\n"

// fixture enqueues a message in a real SQLite queue and claims its
// recipients, as the qmgr hands them to the bouncer.
func fixture(t *testing.T, sender string, rcpts ...store.NewRecipient) (store.Store, []store.ClaimedRecipient, time.Time) {
	t.Helper()
	ctx := context.Background()
	st := teststore.SQLite(t)
	arrival := time.Date(2024, 3, 5, 10, 21, 14, 0, time.UTC)
	m := &store.NewMessage{QueueID: "3C13F3F5A5", Sender: sender, Arrival: arrival, MessageID: "<m1@example.org>",
		EnvID: "env-42", Content: strings.NewReader(original), Recipients: rcpts}
	if err := st.Enqueue(ctx, m); err != nil {
		t.Fatal(err)
	}
	c, err := st.RecipientsClaim(ctx, store.ClaimParams{Owner: "n", Limit: 10, Lease: time.Minute})
	if err != nil || len(c) != len(rcpts) {
		t.Fatalf("claim: %v, %v", c, err)
	}
	return st, c, arrival
}

func newBouncer(st store.Store, sub *capture, log io.Writer) *Bouncer {
	return &Bouncer{
		Hostname: "mx.example.com", SizeLimit: 50000, Store: st, Submit: sub,
		MaxQueueLifetime: 5 * 24 * time.Hour, DelayWarningTime: 4 * time.Hour,
		BounceNoticeRecipient: "pm-bounce", TwoBounceNoticeRecipient: "pm-2bounce", DelayNoticeRecipient: "pm-delay",
		DoubleBounceSender: "double-bounce",
		Log:                maillog.New(log, "mx", "postfix"),
		Now:                func() time.Time { return time.Date(2024, 3, 5, 14, 30, 0, 0, time.UTC) },
	}
}

// report is a parsed notice: its headers and its three MIME parts.
type report struct {
	header    mail.Header
	text      string               // part 1
	perMsg    textproto.MIMEHeader // part 2, per-message fields
	perRcpt   []textproto.MIMEHeader
	origType  string // part 3's Content-Type
	origDesc  string
	origBody  string
	partTypes []string
}

// parse reads a notice as RFC 3464 with the standard library, failing the
// test where its structure is broken.
func parse(t *testing.T, data []byte) report {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a message: %v\n%s", err, data)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	r := report{header: msg.Header}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("part %d: %v\n%s", i, err, data)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		r.partTypes = append(r.partTypes, p.Header.Get("Content-Type"))
		switch i {
		case 0:
			r.text = strings.ReplaceAll(string(body), "\r\n", "\n")
		case 1:
			tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
			r.perMsg, err = tp.ReadMIMEHeader()
			if err != nil {
				t.Fatalf("per-message fields: %v\n%s", err, body)
			}
			for {
				h, err := tp.ReadMIMEHeader()
				if len(h) > 0 {
					r.perRcpt = append(r.perRcpt, h)
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("per-recipient fields: %v\n%s", err, body)
				}
			}
		case 2:
			r.origType, r.origDesc, r.origBody = p.Header.Get("Content-Type"), p.Header.Get("Content-Description"), string(body)
		}
	}
	if len(r.partTypes) != 3 {
		t.Fatalf("%d parts, want 3: %v", len(r.partTypes), r.partTypes)
	}
	return r
}

func check(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func TestFailureReport(t *testing.T) {
	st, c, _ := fixture(t, "alice@example.org",
		store.NewRecipient{Address: "bob@example.net", ORCPT: "rfc822;bob@example.net"},
		store.NewRecipient{Address: "carol@example.net", Orig: "team@example.org"},
		store.NewRecipient{Address: "dave@example.net", Notify: "NEVER"},
		store.NewRecipient{Address: "erin@example.net", Notify: "SUCCESS,FAILURE"})
	results := []transport.Result{
		{Status: transport.Bounced, DSN: "5.1.1", Text: "host mx.example.net[192.0.2.25] said: 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown (in reply to RCPT TO command)"},
		{Status: transport.Bounced, DSN: "5.0.0", Text: "gone away"},
		{Status: transport.Bounced, DSN: "5.0.0", Text: "never told"},
		// An expired recipient keeps its 4.X.Y status (Postfix's defer log).
		{Status: transport.Deferred, DSN: "4.4.1", Text: "connect to mx.example.net[192.0.2.25]:25: Connection refused"},
	}
	var sub capture
	var log bytes.Buffer
	if err := newBouncer(st, &sub, &log).Bounce(context.Background(), c, results); err != nil {
		t.Fatal(err)
	}
	if len(sub.got) != 1 {
		t.Fatalf("%d notices, want 1 (notify_classes has no bounce)", len(sub.got))
	}
	n := sub.got[0]
	if n.env.Sender != "" || len(n.env.Recipients) != 1 || n.env.Recipients[0].Address != "alice@example.org" || !n.env.Internal {
		t.Errorf("envelope: %+v", n.env)
	}
	r := parse(t, n.data)
	check(t, "Subject", r.header.Get("Subject"), "Undelivered Mail Returned to Sender")
	check(t, "To", r.header.Get("To"), "alice@example.org")
	check(t, "Auto-Submitted", r.header.Get("Auto-Submitted"), "auto-replied")
	check(t, "In-Reply-To", r.header.Get("In-Reply-To"), "<m1@example.org>")
	check(t, "part 1 type", r.partTypes[0], "text/plain; charset=us-ascii")
	check(t, "part 2 type", r.partTypes[1], "message/delivery-status")
	// Postfix 3.7's failure template, then one blank-separated line per
	// recipient, wrapped at 79 columns with a 4-space indent.
	want := `This is the mail system at host mx.example.com.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

<bob@example.net>: host mx.example.net[192.0.2.25] said: 550 5.1.1
    <bob@example.net>: Recipient address rejected: User unknown (in reply to
    RCPT TO command)

<carol@example.net> (expanded from <team@example.org>): gone away

<erin@example.net>: connect to mx.example.net[192.0.2.25]:25: Connection
    refused
`
	check(t, "notification", r.text, want)
	check(t, "Reporting-MTA", r.perMsg.Get("Reporting-MTA"), "dns; mx.example.com")
	check(t, "Original-Envelope-Id", r.perMsg.Get("Original-Envelope-Id"), "env-42")
	check(t, "X-Postfix-Queue-ID", r.perMsg.Get("X-Postfix-Queue-ID"), "3C13F3F5A5")
	check(t, "X-Postfix-Sender", r.perMsg.Get("X-Postfix-Sender"), "rfc822; alice@example.org")
	if _, err := mail.ParseDate(strings.TrimSuffix(r.perMsg.Get("Arrival-Date"), " (UTC)")); err != nil {
		t.Errorf("Arrival-Date %q: %v", r.perMsg.Get("Arrival-Date"), err)
	}
	if len(r.perRcpt) != 3 {
		t.Fatalf("%d recipient groups, want 3 (NOTIFY=NEVER left out): %v", len(r.perRcpt), r.perRcpt)
	}
	wantRcpt := []map[string]string{
		{"Final-Recipient": "rfc822; bob@example.net", "Original-Recipient": "rfc822;bob@example.net", "Action": "failed",
			"Status": "5.1.1", "Remote-MTA": "dns; mx.example.net",
			"Diagnostic-Code": "smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown"},
		{"Final-Recipient": "rfc822; carol@example.net", "Original-Recipient": "rfc822; team@example.org",
			"Action": "failed", "Status": "5.0.0", "Diagnostic-Code": "X-Postfix; gone away"},
		{"Final-Recipient": "rfc822; erin@example.net", "Action": "failed", "Status": "4.4.1",
			"Diagnostic-Code": "X-Postfix; connect to mx.example.net[192.0.2.25]:25: Connection refused"},
	}
	for i, fields := range wantRcpt {
		for k, v := range fields {
			// Folded fields unfold to one space per fold.
			check(t, "recipient "+fields["Final-Recipient"]+" "+k, strings.Join(strings.Fields(r.perRcpt[i].Get(k)), " "), v)
		}
		if r.perRcpt[i].Get("Will-Retry-Until") != "" {
			t.Errorf("failure report has Will-Retry-Until")
		}
	}
	check(t, "part 3 type", r.origType, "message/rfc822")
	check(t, "part 3 description", r.origDesc, "Undelivered Message")
	check(t, "returned message", r.origBody, "Return-Path: <alice@example.org>\r\n"+original)
	check(t, "log", strings.TrimSpace(log.String())[strings.Index(log.String(), "postfix/"):],
		"postfix/bounce["+pidOf(log.String())+"]: 3C13F3F5A5: sender non-delivery notification: "+n.env.QueueID)
}

// pidOf picks the pid out of the first log line's "postfix/service[pid]".
func pidOf(log string) string {
	_, rest, _ := strings.Cut(log, "[")
	pid, _, _ := strings.Cut(rest, "]")
	return pid
}

func TestDelayWarning(t *testing.T) {
	st, c, arrival := fixture(t, "alice@example.org",
		store.NewRecipient{Address: "bob@example.net"},
		store.NewRecipient{Address: "carol@example.net", Notify: "FAILURE"},
		store.NewRecipient{Address: "dave@example.net", Notify: "DELAY,FAILURE"})
	res := transport.Result{Status: transport.Deferred, DSN: "4.4.1", Text: "connect to mx.example.net[192.0.2.25]:25: Connection refused"}
	var sub capture
	var log bytes.Buffer
	if err := newBouncer(st, &sub, &log).DelayWarn(context.Background(), c, []transport.Result{res, res, res}); err != nil {
		t.Fatal(err)
	}
	if len(sub.got) != 1 {
		t.Fatalf("%d notices, want 1", len(sub.got))
	}
	r := parse(t, sub.got[0].data)
	check(t, "Subject", r.header.Get("Subject"), "Delayed Mail (still being retried)")
	check(t, "Auto-Submitted", r.header.Get("Auto-Submitted"), "auto-replied")
	want := `This is the mail system at host mx.example.com.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

Your message could not be delivered for more than 4 hour(s).
It will be retried until it is 5 day(s) old.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

<bob@example.net>: connect to mx.example.net[192.0.2.25]:25: Connection refused

<dave@example.net>: connect to mx.example.net[192.0.2.25]:25: Connection
    refused
`
	check(t, "notification", r.text, want)
	if len(r.perRcpt) != 2 {
		t.Fatalf("%d recipient groups, want 2 (NOTIFY=FAILURE left out)", len(r.perRcpt))
	}
	for _, g := range r.perRcpt {
		check(t, "Action", g.Get("Action"), "delayed")
		check(t, "Status", g.Get("Status"), "4.4.1")
		until, err := mail.ParseDate(strings.TrimSuffix(g.Get("Will-Retry-Until"), " (UTC)"))
		if err != nil || !until.Equal(arrival.Add(5*24*time.Hour)) {
			t.Errorf("Will-Retry-Until %q (%v), want arrival + 5d", g.Get("Will-Retry-Until"), err)
		}
	}
	// A warning returns the headers only.
	check(t, "part 3 type", r.origType, "text/rfc822-headers")
	check(t, "part 3 description", r.origDesc, "Undelivered Message Headers")
	if strings.Contains(r.origBody, "see you at noon") || !strings.Contains(r.origBody, "Subject: lunch") {
		t.Errorf("returned headers:\n%s", r.origBody)
	}
	if !strings.Contains(log.String(), ": 3C13F3F5A5: sender delay notification: "+sub.got[0].env.QueueID+"\n") {
		t.Errorf("log:\n%s", log.String())
	}
}

// TestDelayWarningListsEarlierDeferrals: the message's recipients deferred
// in an earlier batch of outcomes are in the warning too, with their
// stored reasons, as Postfix's warning lists the whole defer logfile.
func TestDelayWarningListsEarlierDeferrals(t *testing.T) {
	st, c, _ := fixture(t, "alice@example.org",
		store.NewRecipient{Address: "bob@example.net"},
		store.NewRecipient{Address: "carol@example.com"},
		store.NewRecipient{Address: "dave@example.org"})
	ctx := context.Background()
	later := time.Now().Add(time.Hour)
	if err := st.RecipientsDefer(ctx, "n", []store.Deferral{
		{ID: c[0].ID, Reason: "host mx.example.net[192.0.2.25] said: 450 4.2.0 <bob@example.net>: Mailbox busy (in reply to RCPT TO command)", NextAttempt: later},
		{ID: c[1].ID, Reason: "connect to mx.example.com[192.0.2.26]:25: Connection refused", NextAttempt: later},
	}); err != nil {
		t.Fatal(err)
	}
	res := transport.Result{Status: transport.Deferred, DSN: "4.4.2", Text: "conversation with mx.example.org[192.0.2.27] timed out while receiving the initial server greeting"}
	var sub capture
	if err := newBouncer(st, &sub, io.Discard).DelayWarn(ctx, c[2:], []transport.Result{res}); err != nil {
		t.Fatal(err)
	}
	if len(sub.got) != 1 {
		t.Fatalf("%d notices, want 1", len(sub.got))
	}
	r := parse(t, sub.got[0].data)
	var got []string
	for _, g := range r.perRcpt {
		got = append(got, g.Get("Final-Recipient")+" "+g.Get("Status"))
	}
	want := []string{"rfc822; dave@example.org 4.4.2", "rfc822; bob@example.net 4.2.0", "rfc822; carol@example.com 4.0.0"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("recipients %q, want %q", got, want)
	}
	for _, w := range []string{"<bob@example.net>: host mx.example.net[192.0.2.25] said: 450 4.2.0", "<carol@example.com>: connect to"} {
		if !strings.Contains(r.text, w) {
			t.Errorf("notification lacks %q:\n%s", w, r.text)
		}
	}
}

func TestPostmasterCopies(t *testing.T) {
	st, c, _ := fixture(t, "alice@example.org",
		store.NewRecipient{Address: "bob@example.net"},
		store.NewRecipient{Address: "dave@example.net", Notify: "NEVER"})
	res := transport.Result{Status: transport.Bounced, DSN: "5.1.1", Text: "unknown user"}
	for _, tc := range []struct {
		warn                bool
		subject, to, what   string
		senderWhat, pmWhat2 string
	}{
		{false, "Postmaster Copy: Undelivered Mail", "pm-bounce", "postmaster non-delivery notification", "sender non-delivery notification", ""},
		{true, "Postmaster Warning: Delayed Mail", "pm-delay", "postmaster delay notification", "sender delay notification", ""},
	} {
		var sub capture
		var log bytes.Buffer
		b := newBouncer(st, &sub, &log)
		b.NotifyClasses = []string{"resource", "software", "bounce", "delay"}
		var err error
		if tc.warn {
			err = b.DelayWarn(context.Background(), c, []transport.Result{res, res})
		} else {
			err = b.Bounce(context.Background(), c, []transport.Result{res, res})
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(sub.got) != 2 {
			t.Fatalf("%s: %d notices, want the sender's and the postmaster's", tc.what, len(sub.got))
		}
		n := sub.got[1]
		if n.env.Sender != "double-bounce" || n.env.Recipients[0].Address != tc.to {
			t.Errorf("%s envelope: from <%s> to %+v", tc.what, n.env.Sender, n.env.Recipients)
		}
		r := parse(t, n.data)
		check(t, "Subject", r.header.Get("Subject"), tc.subject)
		check(t, "To", r.header.Get("To"), tc.to)
		check(t, "Auto-Submitted", r.header.Get("Auto-Submitted"), "auto-generated")
		// No boilerplate, every recipient (NOTIFY does not apply), headers only.
		check(t, tc.what+" notification", r.text, "\n<bob@example.net>: unknown user\n\n<dave@example.net>: unknown user\n")
		if len(r.perRcpt) != 2 {
			t.Errorf("%s: %d recipient groups, want 2", tc.what, len(r.perRcpt))
		}
		check(t, "part 3 type", r.origType, "text/rfc822-headers")
		for _, line := range []string{": 3C13F3F5A5: " + tc.senderWhat + ": " + sub.got[0].env.QueueID + "\n",
			": 3C13F3F5A5: " + tc.what + ": " + n.env.QueueID + "\n"} {
			if !strings.Contains(log.String(), line) {
				t.Errorf("log lacks %q:\n%s", line, log.String())
			}
		}
	}
}

func TestBounceOfABounce(t *testing.T) {
	st, c, _ := fixture(t, "", store.NewRecipient{Address: "alice@example.org"})
	res := []transport.Result{{Status: transport.Bounced, DSN: "5.1.1", Text: "unknown user"}}
	// Default notify_classes: dropped, as Postfix does.
	var sub capture
	var log bytes.Buffer
	b := newBouncer(st, &sub, &log)
	b.NotifyClasses = []string{"resource", "software"}
	if err := b.Bounce(context.Background(), c, res); err != nil || len(sub.got) != 0 {
		t.Fatalf("default classes: %d notices, %v", len(sub.got), err)
	}
	if err := b.DelayWarn(context.Background(), c, res); err != nil || len(sub.got) != 0 {
		t.Fatalf("delay of a bounce: %d notices, %v", len(sub.got), err)
	}
	// 2bounce: to 2bounce_notice_recipient with the whole original.
	b.NotifyClasses = []string{"2bounce"}
	if err := b.Bounce(context.Background(), c, res); err != nil || len(sub.got) != 1 {
		t.Fatalf("2bounce: %d notices, %v", len(sub.got), err)
	}
	n := sub.got[0]
	if n.env.Sender != "double-bounce" || n.env.Recipients[0].Address != "pm-2bounce" {
		t.Errorf("double bounce envelope: from <%s> to %+v", n.env.Sender, n.env.Recipients)
	}
	r := parse(t, n.data)
	check(t, "Subject", r.header.Get("Subject"), "Postmaster Copy: Undelivered Mail")
	check(t, "part 3 type", r.origType, "message/rfc822")
	if r.perMsg.Get("X-Postfix-Sender") != "" {
		t.Errorf("null sender written as X-Postfix-Sender %q", r.perMsg.Get("X-Postfix-Sender"))
	}
	if !strings.Contains(log.String(), ": 3C13F3F5A5: postmaster non-delivery notification: "+n.env.QueueID+"\n") {
		t.Errorf("log:\n%s", log.String())
	}
}

func TestFailedPostmasterCopyDiscarded(t *testing.T) {
	st, c, _ := fixture(t, "double-bounce@mx.example.com", store.NewRecipient{Address: "postmaster@example.org"})
	var sub capture
	var log bytes.Buffer
	b := newBouncer(st, &sub, &log)
	b.NotifyClasses = []string{"bounce", "2bounce"}
	if err := b.Bounce(context.Background(), c, []transport.Result{{DSN: "5.1.1", Text: "unknown user"}}); err != nil {
		t.Fatal(err)
	}
	if len(sub.got) != 0 {
		t.Errorf("a notice about a failed postmaster copy was sent")
	}
	if !strings.Contains(log.String(), "warning: 3C13F3F5A5: undeliverable postmaster notification discarded") {
		t.Errorf("log:\n%s", log.String())
	}
}

func TestSubmitFailureIsReported(t *testing.T) {
	st, c, _ := fixture(t, "alice@example.org", store.NewRecipient{Address: "bob@example.net"})
	sub := capture{fail: errors.New("queue file write error")}
	var log bytes.Buffer
	err := newBouncer(st, &sub, &log).Bounce(context.Background(), c, []transport.Result{{DSN: "5.1.1", Text: "x"}})
	if err == nil || !strings.Contains(err.Error(), "queue file write error") {
		t.Errorf("Bounce = %v, want the submit error (the qmgr defers and tries again)", err)
	}
	if strings.Contains(log.String(), "notification") {
		t.Errorf("a notice that was not enqueued was logged:\n%s", log.String())
	}
}

// TestRejected checks the notice for mail cleanup refused before it was queued: one per sender, every
// recipient that asks for failures listed with the reason, the original's headers only.
func TestRejected(t *testing.T) {
	var sub capture
	var log bytes.Buffer
	b := newBouncer(nil, &sub, &log)
	b.NotifyClasses = []string{"bounce"}
	arrival := time.Date(2024, 3, 5, 10, 21, 14, 0, time.UTC)
	env := &envelope.Envelope{QueueID: "4D24A4B6B6", Sender: "alice@example.org", Arrival: arrival, Recipients: []envelope.Recipient{
		{Address: "bob@example.net"}, {Address: "dave@example.net", Notify: "NEVER"}, {Address: "carol@example.net"},
	}}
	if err := b.Rejected(context.Background(), env, strings.NewReader(original), "5.7.1", "no spam please"); err != nil {
		t.Fatal(err)
	}
	if len(sub.got) != 2 {
		t.Fatalf("%d notices, want the sender's and the postmaster copy", len(sub.got))
	}
	n := sub.got[0]
	if n.env.Sender != "" || len(n.env.Recipients) != 1 || n.env.Recipients[0].Address != "alice@example.org" {
		t.Errorf("notice envelope: %+v", n.env)
	}
	r := parse(t, n.data)
	check(t, "Subject", r.header.Get("Subject"), "Undelivered Mail Returned to Sender")
	check(t, "References", r.header.Get("References"), "<m1@example.org>")
	if !strings.Contains(r.text, "\n<bob@example.net>: no spam please\n\n<carol@example.net>: no spam please\n") || strings.Contains(r.text, "dave@") {
		t.Errorf("notification text:\n%s", r.text)
	}
	check(t, "X-Postfix-Queue-ID", r.perMsg.Get("X-Postfix-Queue-ID"), "4D24A4B6B6")
	if len(r.perRcpt) != 2 {
		t.Fatalf("%d per-recipient blocks, want 2", len(r.perRcpt))
	}
	for _, h := range r.perRcpt {
		check(t, "Status", h.Get("Status"), "5.7.1")
		check(t, "Diagnostic-Code", h.Get("Diagnostic-Code"), "X-Postfix; no spam please")
	}
	check(t, "part 3 type", r.origType, "text/rfc822-headers")
	wantHead := "Return-Path: <alice@example.org>\r\n" + original[:strings.Index(original, "\r\n\r\n")+2]
	check(t, "returned headers", r.origBody, wantHead)
	if !strings.Contains(log.String(), "4D24A4B6B6: sender non-delivery notification: "+sub.got[0].env.QueueID) {
		t.Errorf("log:\n%s", log.String())
	}

	// A refused postmaster copy is not returned.
	sub.got = nil
	env.Sender = "double-bounce@mx.example.com"
	if err := b.Rejected(context.Background(), env, strings.NewReader(original), "5.7.1", "x"); err != nil || len(sub.got) != 0 {
		t.Errorf("double-bounce sender: %v, %d notices", err, len(sub.got))
	}
}

func TestLineWrap(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"short", []string{"short"}},
		{strings.Repeat("x", 79), []string{strings.Repeat("x", 79)}},
		{strings.Repeat("x", 90) + " tail", []string{strings.Repeat("x", 90), "    tail"}},
		{"a " + strings.Repeat("b", 77) + " c", []string{"a " + strings.Repeat("b", 77), "    c"}},
		{"a " + strings.Repeat("b", 78) + " c", []string{"a", "    " + strings.Repeat("b", 78), "    c"}},
		{strings.Repeat("w ", 60), []string{strings.TrimSpace(strings.Repeat("w ", 40)), "    " + strings.TrimSpace(strings.Repeat("w ", 20))}},
	} {
		got := lineWrap(tc.in, 79, 4)
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("lineWrap(%q) =\n%q\nwant\n%q", tc.in, got, tc.want)
		}
	}
}
