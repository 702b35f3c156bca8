package cleanup

import (
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/teststore"
	"sqlmta/mtad/envelope"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/reply"
	"sqlmta/store"
)

func sqliteStore(t testing.TB) store.Store { return teststore.SQLite(t) }

func newCleanup(st store.Store, log io.Writer) *Cleanup {
	return New(Config{
		Hostname: "mx.example.com",
		Qualify: func(a string) string {
			if a != "" && !strings.Contains(a, "@") {
				return a + "@example.com"
			}
			return a
		},
	}, st, maillog.New(log, "mx", "postfix"))
}

func stored(t *testing.T, st store.Store, id string) string {
	t.Helper()
	rc, err := st.ContentOpen(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSubmitEnqueuesWithHeaders(t *testing.T) {
	st := sqliteStore(t)
	var log strings.Builder
	c := newCleanup(st, &log)
	woken := 0
	c.Enqueued = func() { woken++ }
	env := &envelope.Envelope{
		QueueID: "ABC123", Sender: "root", ClientName: "client.example.org", ClientAddr: "127.0.0.1",
		Helo: "client.example.org", Protocol: "ESMTP", Arrival: time.Now(),
		Recipients: []envelope.Recipient{{Address: "bob", Orig: "bob"}, {Address: "x@y.example", Orig: "x@y.example"}, {Address: "bob", Orig: "bob"}},
	}
	body := "Subject: hi\r\n\r\nbody line\r\n"
	if err := c.Submit(context.Background(), env, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	m, err := st.MessageGet(context.Background(), "ABC123")
	if err != nil {
		t.Fatal(err)
	}
	if m.Sender != "root@example.com" || len(m.Recipients) != 2 || m.Recipients[0].Address != "bob@example.com" {
		t.Errorf("envelope not qualified or duplicates kept: sender %q, recipients %+v", m.Sender, m.Recipients)
	}
	got := stored(t, st, "ABC123")
	for _, re := range []string{
		`^Received: from client\.example\.org \(client\.example\.org \[127\.0\.0\.1\]\)\r\n\tby mx\.example\.com \(Postfix\) with ESMTP id ABC123; `,
		`\r\nSubject: hi\r\nMessage-Id: <\d{14}\.ABC123@mx\.example\.com>\r\nDate: [^\r]+\r\nFrom: root@example\.com\r\n\r\nbody line\r\n$`,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("stored content lacks %s:\n%q", re, got)
		}
	}
	if m.Size != int64(len(got)) {
		t.Errorf("size %d, content %d bytes", m.Size, len(got))
	}
	if woken != 1 || !strings.Contains(log.String(), "postfix/cleanup[") || !strings.Contains(log.String(), "ABC123: message-id=<") {
		t.Errorf("woken %d, log %q", woken, log.String())
	}
}

func TestSubmitKeepsExistingHeadersAndRemoteClients(t *testing.T) {
	st := sqliteStore(t)
	c := newCleanup(st, io.Discard)
	// A remote client: Postfix adds no missing headers for it (always_add_missing_headers = no).
	env := &envelope.Envelope{QueueID: "R1", Sender: "a@b.example", ClientAddr: "192.0.2.7", ClientName: "unknown",
		Helo: "h", Protocol: "SMTP", Recipients: []envelope.Recipient{{Address: "c@d.example"}}}
	if err := c.Submit(context.Background(), env, strings.NewReader("Subject: s\r\n\r\nb\r\n")); err != nil {
		t.Fatal(err)
	}
	got := stored(t, st, "R1")
	if strings.Contains(got, "Message-Id:") || strings.Contains(got, "\r\nDate:") || strings.Contains(got, "\r\nFrom:") {
		t.Errorf("headers added for a remote client:\n%q", got)
	}
	if !strings.Contains(got, "\tfor <c@d.example>; ") {
		t.Errorf("single recipient not in Received:\n%q", got)
	}
}

func TestSubmitStoreFailureIs451(t *testing.T) {
	st := sqliteStore(t)
	c := newCleanup(st, io.Discard)
	st.Close() // the database is gone
	env := &envelope.Envelope{QueueID: "F1", Sender: "a@b.example", Recipients: []envelope.Recipient{{Address: "c@d.example"}}}
	err := c.Submit(context.Background(), env, strings.NewReader("Subject: s\r\n\r\nb\r\n"))
	re := reply.As(err)
	if re == nil || re.String() != "451 4.3.0 Error: queue file write error" {
		t.Fatalf("Submit on a closed store = %v, want 451 4.3.0", err)
	}
}

// TestReceivedTLSAndAuth: mail received over TLS from an authenticated
// client says ESMTPSA (RFC 3848) and, with smtpd_sasl_authenticated_header,
// names the login on its own line, as Postfix writes it.
func TestReceivedTLSAndAuth(t *testing.T) {
	st := sqliteStore(t)
	c := newCleanup(st, io.Discard)
	for _, tc := range []struct {
		id     string
		tls    bool
		user   string
		header bool
		want   string
	}{
		{"T1", true, "", false, `^Received: from h \(client\.example \[192\.0\.2\.7\]\)\r\n\tby mx\.example\.com \(Postfix\) with ESMTPS id T1\r\n`},
		{"T2", false, "ann", false, `^Received: from h \(client\.example \[192\.0\.2\.7\]\)\r\n\tby mx\.example\.com \(Postfix\) with ESMTPA id T2\r\n`},
		{"T3", true, "ann", true, `^Received: from h \(client\.example \[192\.0\.2\.7\]\)\r\n\t\(Authenticated sender: ann\)\r\n\tby mx\.example\.com \(Postfix\) with ESMTPSA id T3\r\n`},
	} {
		env := &envelope.Envelope{QueueID: tc.id, Sender: "a@b.example", ClientAddr: "192.0.2.7", ClientName: "client.example",
			Helo: "h", Protocol: "ESMTP", TLS: tc.tls, SASLUser: tc.user, SASLHeader: tc.header,
			Recipients: []envelope.Recipient{{Address: "c@d.example"}}}
		if err := c.Submit(context.Background(), env, strings.NewReader("Subject: s\r\n\r\nb\r\n")); err != nil {
			t.Fatal(err)
		}
		if got := stored(t, st, tc.id); !regexp.MustCompile(tc.want).MatchString(got) {
			t.Errorf("%s: want %s, got:\n%q", tc.id, tc.want, got)
		}
	}
}
