// Package bounce returns undeliverable mail to its sender as an RFC 3464
// delivery status notification laid out the way Postfix's bounce(8) lays it
// out (reference §10), and enqueues it through cleanup like any other mail.
package bounce

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
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

// Bouncer builds and enqueues non-delivery notices. It implements qmgr.Bouncer.
type Bouncer struct {
	Hostname        string // myhostname
	SizeLimit       int64  // bounce_size_limit: a larger original is returned as headers only
	MaxLifetimeDays int    // for the text of expiry notices
	Store           store.Store
	Submit          Submitter
	Log             *maillog.Logger
	Now             func() time.Time
}

// Bounce sends one notice per message for the given recipients. A bounce of
// a bounce (null sender) is dropped with a log line, as Postfix does when
// notify_classes lacks "2bounce".
func (b *Bouncer) Bounce(ctx context.Context, rcpts []store.ClaimedRecipient, results []transport.Result) error {
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
	for _, id := range order {
		g := groups[id]
		if g.rcpts[0].Sender == "" {
			b.Log.Printf("bounce", "%s: postmaster non-delivery notification discarded (null sender)", id)
			continue
		}
		if err := b.one(ctx, g.rcpts, g.results); err != nil {
			return fmt.Errorf("bounce %s: %w", id, err)
		}
	}
	return nil
}

func (b *Bouncer) one(ctx context.Context, rcpts []store.ClaimedRecipient, results []transport.Result) error {
	now := time.Now()
	if b.Now != nil {
		now = b.Now()
	}
	first := rcpts[0]
	newID := queueid.New()
	boundary := fmt.Sprintf("%s.%d/%s", first.QueueID, now.Unix(), b.Hostname)
	var m bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&m, format+"\r\n", args...) }
	w("From: Mail Delivery System <MAILER-DAEMON@%s>", b.Hostname)
	w("Subject: Undelivered Mail Returned to Sender")
	w("To: %s", first.Sender)
	if first.MessageID != "" {
		w("References: %s", first.MessageID)
		w("In-Reply-To: %s", first.MessageID)
	}
	w("Auto-Submitted: auto-replied")
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"", boundary)
	w("Content-Transfer-Encoding: 8bit")
	w("Message-Id: <%s.%s@%s>", now.UTC().Format("20060102150405"), newID, b.Hostname)
	w("")
	w("This is a MIME-encapsulated message.")
	w("")
	w("--%s", boundary)
	w("Content-Description: Notification")
	w("Content-Type: text/plain; charset=us-ascii")
	w("")
	w("This is the mail system at host %s.", b.Hostname)
	w("")
	w("I'm sorry to have to inform you that your message could not")
	w("be delivered to one or more recipients. It's attached below.")
	w("")
	w("For further assistance, please send mail to postmaster.")
	w("")
	w("If you do so, please include this problem report. You can")
	w("delete your own text from the attached returned message.")
	w("")
	w("                   The mail system")
	w("")
	for i, r := range rcpts {
		line := "<" + r.Address + ">"
		if r.Orig != "" && !strings.EqualFold(r.Orig, r.Address) {
			line += " (expanded from <" + r.Orig + ">)"
		}
		w("%s: %s", line, results[i].Text)
	}
	w("")
	w("--%s", boundary)
	w("Content-Description: Delivery report")
	w("Content-Type: message/delivery-status")
	w("")
	w("Reporting-MTA: dns; %s", b.Hostname)
	w("X-Postfix-Queue-ID: %s", first.QueueID)
	w("X-Postfix-Sender: rfc822; %s", first.Sender)
	w("Arrival-Date: %s", first.Arrival.Local().Format("Mon, _2 Jan 2006 15:04:05 -0700 (MST)"))
	for i, r := range rcpts {
		res := results[i]
		w("")
		w("Final-Recipient: rfc822; %s", r.Address)
		if r.ORCPT != "" {
			w("Original-Recipient: %s", r.ORCPT)
		} else {
			orig := r.Orig
			if orig == "" {
				orig = r.Address
			}
			w("Original-Recipient: rfc822;%s", orig)
		}
		w("Action: failed")
		dsn := res.DSN
		if dsn == "" || dsn[0] != '5' {
			dsn = "5" + strings.TrimLeft(dsn, "0123456789")
			if dsn == "5" {
				dsn = "5.0.0"
			}
		}
		w("Status: %s", dsn)
		if host, said, ok := remoteDiagnostic(res.Text); ok {
			w("Remote-MTA: dns; %s", host)
			w("Diagnostic-Code: smtp; %s", said)
		} else {
			w("Diagnostic-Code: X-Postfix; %s", res.Text)
		}
	}
	w("")
	w("--%s", boundary)

	headersOnly := b.SizeLimit > 0 && first.Size > b.SizeLimit
	if headersOnly {
		w("Content-Description: Undelivered Message Headers")
		w("Content-Type: text/rfc822-headers")
	} else {
		w("Content-Description: Undelivered Message")
		w("Content-Type: message/rfc822")
	}
	w("")
	w("Return-Path: <%s>", first.Sender)
	tail := fmt.Sprintf("\r\n--%s--\r\n", boundary)

	content, err := b.Store.ContentOpen(ctx, first.QueueID)
	if err != nil {
		return err
	}
	defer content.Close()
	var orig io.Reader = content
	if headersOnly {
		orig = headerBlock(content)
	}
	env := &envelope.Envelope{
		QueueID:    newID,
		Sender:     "",
		Recipients: []envelope.Recipient{{Address: first.Sender, Orig: first.Sender}},
		Arrival:    now,
		Internal:   true, // no always_bcc or bcc maps on a bounce
	}
	if err := b.Submit.Submit(ctx, env, io.MultiReader(&m, orig, strings.NewReader(tail))); err != nil {
		return err
	}
	b.Log.Printf("bounce", "%s: sender non-delivery notification: %s", first.QueueID, env.QueueID)
	return nil
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
