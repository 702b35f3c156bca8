// Package cleanup is the last stage before the queue: it qualifies envelope
// addresses, adds the headers Postfix's cleanup(8) adds (Received, and
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
	"strings"
	"time"

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
	Qualify    func(addr string) string // trivial-rewrite standard form
}

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

// New returns a Cleanup writing to st.
func New(cfg Config, st store.Store, log *maillog.Logger) *Cleanup {
	if cfg.HeaderSizeLimit <= 0 {
		cfg.HeaderSizeLimit = 102400
	}
	if cfg.MailName == "" {
		cfg.MailName = "Postfix"
	}
	return &Cleanup{cfg: cfg, store: st, log: log, now: time.Now}
}

// queueWriteError is Postfix's reply when the queue file cannot be written.
var queueWriteError = reply.New(451, "4.3.0", "Error: queue file write error")

// Submit runs cleanup on one message and enqueues it. It returns nil only
// after the store committed.
func (c *Cleanup) Submit(ctx context.Context, env *envelope.Envelope, content io.Reader) error {
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
	sender := c.qualify(env.Sender)
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
	}
	seen := make(map[string]bool, len(env.Recipients))
	for _, r := range env.Recipients {
		addr := c.qualify(r.Address)
		// Duplicate elimination, keyed as with enable_original_recipient.
		key := strings.ToLower(addr) + "\x00" + r.Orig + "\x00" + r.Notify + "\x00" + r.ORCPT
		if seen[key] {
			continue
		}
		seen[key] = true
		m.Recipients = append(m.Recipients, store.NewRecipient{Address: addr, Orig: r.Orig, Notify: r.Notify, ORCPT: r.ORCPT})
	}
	if len(m.Recipients) == 0 {
		return reply.New(554, "5.5.1", "Error: no valid recipients")
	}

	now := c.now()
	var top, bottom bytes.Buffer
	c.writeReceived(&top, env, m, now)
	addMissing := c.cfg.AlwaysAddMissing || c.isLocalClient(env.ClientAddr)
	m.MessageID = hdr.messageID
	if hdr.messageID == "" && addMissing {
		m.MessageID = fmt.Sprintf("<%s.%s@%s>", now.UTC().Format("20060102150405"), env.QueueID, c.cfg.Hostname)
		fmt.Fprintf(&bottom, "Message-Id: %s\r\n", m.MessageID)
	}
	if !hdr.hasDate && addMissing {
		fmt.Fprintf(&bottom, "Date: %s\r\n", now.Format("Mon, 2 Jan 2006 15:04:05 -0700 (MST)"))
	}
	if !hdr.hasFrom && addMissing {
		from := sender
		if from == "" {
			from = "MAILER-DAEMON"
		}
		fmt.Fprintf(&bottom, "From: %s\r\n", from)
	}
	m.Content = io.MultiReader(&top, bytes.NewReader(hdr.raw), &bottom, br)

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

// writeReceived writes Postfix smtpd's Received header.
func (c *Cleanup) writeReceived(w *bytes.Buffer, env *envelope.Envelope, m *store.NewMessage, now time.Time) {
	proto := env.Protocol
	if proto == "" {
		proto = "local"
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
		fmt.Fprintf(w, "\tby %s (%s) with %s id %s", c.cfg.Hostname, c.cfg.MailName, proto, env.QueueID)
	} else {
		fmt.Fprintf(w, "Received: by %s (%s, from userid 0)\r\n\tid %s", c.cfg.Hostname, c.cfg.MailName, env.QueueID)
	}
	if len(m.Recipients) == 1 {
		fmt.Fprintf(w, "\r\n\tfor <%s>", m.Recipients[0].Address)
	}
	fmt.Fprintf(w, "; %s\r\n", now.Format("Mon, 2 Jan 2006 15:04:05 -0700 (MST)"))
}

// header is what cleanup learned from the primary header block.
type header struct {
	raw       []byte // the header lines as received, CRLF-terminated
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
			}
		}
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
