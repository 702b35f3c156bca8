package smtpd

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/mtad/matchlist"
)

// transcript writes raw to addr after the greeting, then QUIT, and returns
// every reply line up to the close, with the server's host name replaced.
func transcript(t *testing.T, addr, hostname, raw string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write([]byte(raw + "QUIT\r\n")); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("%q: %v (read %q)", raw, err, out)
	}
	return strings.ReplaceAll(string(out), hostname, "HOST")
}

// TestDifferentialEdgeInput sends malformed and unusual input — bare LF,
// NUL bytes, over-long lines, UTF-8 addresses with and without SMTPUTF8 —
// to a real Postfix 3.7 and to smtpd, and compares the whole transcripts.
func TestDifferentialEdgeInput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: "[127.0.0.1]:9", ExtraMainCf: "mydestination = local.test\nmynetworks = 127.0.0.0/8\nmyhostname = mx.test\n"})
	ts := start(t, nil)
	long := strings.Repeat("x", 3000)
	cases := map[string]string{
		"bare LF command":         "HELO client.test\nNOOP\n",
		"NUL in command":          "HELO client.test\r\nNOOP\x00junk\r\nMAIL FROM:<a\x00b@c.test>\r\n",
		"long command":            "HELO client.test\r\nNOOP " + long + "\r\nMAIL FROM:<" + long + "@x.test>\r\n",
		"long unknown command":    "HELO client.test\r\n" + long + "\r\n",
		"utf8 without SMTPUTF8":   "EHLO client.test\r\nMAIL FROM:<jörg@example.org>\r\nRCPT TO:<über@remote.example>\r\n",
		"utf8 rcpt only":          "EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<über@remote.example>\r\n",
		"utf8 with SMTPUTF8":      "EHLO client.test\r\nMAIL FROM:<jörg@example.org> SMTPUTF8\r\nRCPT TO:<x@remote.example>\r\n",
		"SMTPUTF8 after HELO":     "HELO client.test\r\nMAIL FROM:<a@example.org> SMTPUTF8\r\n",
		"utf8 rcpt with SMTPUTF8": "EHLO client.test\r\nMAIL FROM:<a@example.org> SMTPUTF8\r\nRCPT TO:<über@bücher.example>\r\n",
		"utf8 domain literal":     "EHLO client.test\r\nMAIL FROM:<a@example.org> SMTPUTF8\r\nRCPT TO:<ü@[192.0.2.1]>\r\n",
		"invalid utf8 SMTPUTF8":   "EHLO client.test\r\nMAIL FROM:<a\xffb@example.org> SMTPUTF8\r\nMAIL FROM:<a@example.org> SMTPUTF8\r\nRCPT TO:<x\xc3@remote.example>\r\n",
		"utf8 data SMTPUTF8":      "EHLO client.test\r\nMAIL FROM:<jörg@example.org> SMTPUTF8 BODY=8BITMIME\r\nRCPT TO:<x@remote.example>\r\nDATA\r\nSubject: grüße\r\n\r\nbody\r\n.\r\n",
		"control char in rcpt":    "HELO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<x\x01y@remote.example>\r\n",
		"SMTPUTF8 with value":     "EHLO client.test\r\nMAIL FROM:<a@example.org> SMTPUTF8=yes\r\n",
		"8bit in EHLO":            "EHLO clïent.test\r\n",
		"control chars in HELO":   "HELO cli\x01ent.test\r\n",
		"many spaces":             "HELO client.test\r\nMAIL     FROM:<a@example.org>\r\nRCPT TO: <x@remote.example>\r\n",
		"lowercase and tabs":      "helo client.test\r\nmail from:<a@example.org>\r\nrcpt\tto:<x@remote.example>\r\n",
		"pipelined after HELO":    "HELO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<x@remote.example>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n",
		"bare LF data":            "EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<x@remote.example>\r\nDATA\r\nSubject: x\n\nbody\x00with nul\n" + long + long + "\n.\n",
		"data dot stuffing":       "EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<x@remote.example>\r\nDATA\r\n..\r\n.x\r\n.\r\n",
		"auth without SASL":       "EHLO client.test\r\nAUTH PLAIN AGFAYg==\r\n",
		"starttls not offered":    "EHLO client.test\r\nSTARTTLS\r\n",
		"BDAT":                    "EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<x@remote.example>\r\nBDAT 3 LAST\r\nabc",
		"HELP and TURN":           "HELP\r\nTURN\r\nEXPN root\r\n",
		"XCLIENT not authorized":  "EHLO client.test\r\nXCLIENT NAME=spoofed.test\r\n",
		"XFORWARD not authorized": "EHLO client.test\r\nXFORWARD NAME=spoofed.test\r\n",
	}
	for name, raw := range cases {
		want := transcript(t, pf.Addr(), "mx.test", raw)
		got := transcript(t, ts.addr, "mx.test", raw)
		// Queue IDs differ: compare the 250 queued line by its prefix.
		if normQueued(want) != normQueued(got) {
			t.Errorf("%s:\npostfix:\n%s\nsmtpd:\n%s", name, want, got)
		}
	}
}

func normQueued(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if j := strings.Index(l, "queued as "); j >= 0 && strings.HasPrefix(l, "250 2.0.0 Ok: ") {
			lines[i] = l[:j] + "queued as ID\r"
		}
	}
	return strings.Join(lines, "\n")
}

// TestDifferentialChunking compares BDAT (RFC 3030), ETRN and the commands
// smtpd does not offer (AUTH, STARTTLS, XCLIENT) with Postfix.
func TestDifferentialChunking(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: "[127.0.0.1]:9",
		ExtraMainCf: "mydestination = local.test\nmynetworks = 127.0.0.0/8\nmyhostname = mx.test\nrelay_domains = relay.test\nmessage_size_limit = 1000\n"})
	relay, _ := matchlist.ParseDomains([]string{"relay.test"}, true)
	ts := start(t, func(c *Config) {
		c.MessageSizeLimit = 1000
		c.Etrn = func(_ context.Context, domain string) (bool, error) { return relay.Contains(domain), nil }
	})
	nuls := func(n int) string { return string(make([]byte, n)) }
	tx := "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@remote.test>\r\n"
	cases := []string{
		"ETRN\r\nETRN relay.test\r\n",
		"EHLO c\r\nETRN\r\nETRN relay.test\r\nETRN other.test\r\nETRN @relay.test\r\nETRN #relay.test\r\nETRN a..b\r\nMAIL FROM:<a@b.test>\r\nETRN relay.test\r\n",
		"EHLO c\r\nBDAT 3 LAST\r\nabc",
		"EHLO c\r\nMAIL FROM:<a@b.test>\r\nBDAT 3 LAST\r\nabc",
		tx + "BDAT 3\r\nabcBDAT 2 LAST\r\nde",
		tx + "BDAT 0 LAST\r\n",
		tx + "BDAT x\r\n",
		tx + "BDAT\r\n",
		tx + "BDAT 3 FOO\r\nabc",
		tx + "BDAT 3\r\nabcDATA\r\n",
		tx + "BDAT 1500 LAST\r\n" + nuls(1500),
		tx + "BDAT 800\r\n" + nuls(800) + "BDAT 800 LAST\r\n" + nuls(800),
		tx + "BDAT 10 LAST\r\nSubject: x\nBDAT 2 LAST\r\nxy",
		tx + "BDAT 12\r\nSubject: x\r\nBDAT 8\r\n\nline\r\n\rBDAT 5 LAST\r\n\nend.",
		tx + "BDAT 4\r\na\r\nbBDAT 3 LAST\r\nc\nd",
		"HELO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@remote.test>\r\nBDAT 3 LAST\r\nabc",
		"AUTH PLAIN x\r\nEHLO c\r\nAUTH\r\nSTARTTLS x\r\nSTARTTLS\r\n",
		"HELO c\r\nMAIL FROM:<a@b.test> BODY=BINARYMIME\r\n",
		"EHLO c\r\nXCLIENT NAME=x\r\nXFORWARD NAME=x\r\n",
	}
	for _, raw := range cases {
		want := transcript(t, pf.Addr(), "mx.test", raw)
		got := transcript(t, ts.addr, "mx.test", raw)
		if normQueued(want) != normQueued(got) {
			t.Errorf("%q:\npostfix:\n%s\nsmtpd:\n%s", raw, want, got)
		}
	}
}
