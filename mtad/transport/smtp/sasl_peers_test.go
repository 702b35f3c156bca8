package smtp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/internal/testcert"
	"sqlmta/mtad/transport"
)

// smarthost is a real Postfix 3.7 that relays only for clients that
// authenticate, through a real Dovecot (smtpd_sasl_type = dovecot), into
// an smtp-sink: what an ISP's submission server does.
type smarthost struct {
	*peers.Postfix
	nexthop string // "[127.0.0.1]:port"
}

// tempDir is a directory Postfix's processes may read.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sqlmta-sasl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startSmarthost(t *testing.T, dc *peers.Dovecot, sink *peers.Sink, extra string) smarthost {
	t.Helper()
	pf := peers.StartPostfix(t, peers.PostfixOptions{
		Relayhost: "[" + strings.Replace(sink.Addr(), ":", "]:", 1),
		// 127.0.0.1, where the client connects from, is not trusted.
		ExtraMainCf: "mynetworks = 127.0.0.2/32\nmyhostname = smarthost.test\n" +
			"smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = inet:" + dc.AuthAddr() + "\n" +
			"smtpd_relay_restrictions = permit_sasl_authenticated, reject\n" + extra,
	})
	return smarthost{pf, fmt.Sprintf("[127.0.0.1]:%d", pf.Port())}
}

// login returns how the smarthost's smtpd logged the client of the message
// our result reports as queued there: "CRAM-MD5 ann@example.org", or ""
// for a client that did not authenticate.
func (sh smarthost) login(t *testing.T, r transport.Result) string {
	t.Helper()
	m := regexp.MustCompile(`queued as ([0-9A-F]+)`).FindStringSubmatch(r.Text)
	if m == nil {
		t.Fatalf("not queued at the smarthost: %+v", r)
	}
	re := regexp.MustCompile(m[1] + `: client=localhost\[127\.0\.0\.1\](?:, sasl_method=(\S+), sasl_username=(\S+))?\n`)
	var got []string
	peers.WaitFor(t, 10*time.Second, func() bool { got = re.FindStringSubmatch(sh.Maillog()); return got != nil }, "the smarthost's client= line for "+m[1])
	return strings.TrimSpace(got[1] + " " + got[2])
}

// TestAuthThroughPostfixSmarthost relays through a smarthost that needs
// AUTH: mechanisms, security options, failures with Postfix's texts, the
// password lookup keys, sender-dependent credentials and connection reuse.
func TestAuthThroughPostfixSmarthost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Postfix and Dovecot")
	}
	tlsLevel := "" // of the next deliver
	dc := peers.StartDovecot(t, peers.DovecotOptions{Passwords: map[string]string{"ann@example.org": "secret", "bob@example.org": "hunter2"}})
	sink := peers.StartSink(t, peers.SinkOptions{})
	sh := startSmarthost(t, dc, sink, "")
	// Only PLAIN and LOGIN, as many ISPs offer, and STARTTLS.
	certDir := tempDir(t)
	certFile, keyFile := testcert.Files(t, certDir, "smarthost.test")
	shPlain := startSmarthost(t, dc, sink, "smtpd_sasl_mechanism_filter = plain, login\n"+
		"smtpd_tls_security_level = may\nsmtpd_tls_cert_file = "+certFile+"\nsmtpd_tls_key_file = "+keyFile+"\n")
	deliver := func(cfg SASLConfig, nexthop, sender string, warnf func(string, ...any)) transport.Result {
		t.Helper()
		cfg.Enable = true
		tr := New(Config{HeloName: "client.test", SASL: cfg, Warnf: warnf, TLSLevel: tlsLevel})
		defer tr.Close()
		d := message(nexthop, "x@remote.test")
		d.Sender = sender
		return tr.Deliver(context.Background(), d)[0]
	}

	t.Run("cram-md5 by default", func(t *testing.T) {
		before := sink.Count()
		r := deliver(SASLConfig{Passwords: passwords(t, sh.nexthop+" ann@example.org:secret")}, sh.nexthop, "alice@sender.test", nil)
		if r.Status != transport.Sent {
			t.Fatalf("%+v", r)
		}
		if got := sh.login(t, r); got != "CRAM-MD5 ann@example.org" {
			t.Errorf("smarthost logged %q", got)
		}
		peers.WaitFor(t, 30*time.Second, func() bool { return sink.Count() > before }, "the message at the sink")
	})

	t.Run("plain with noanonymous", func(t *testing.T) {
		r := deliver(SASLConfig{SecurityOptions: []string{"noanonymous"}, Passwords: passwords(t, shPlain.nexthop+" ann@example.org:secret")},
			shPlain.nexthop, "alice@sender.test", nil)
		if r.Status != transport.Sent {
			t.Fatalf("%+v", r)
		}
		if got := shPlain.login(t, r); got != "PLAIN ann@example.org" {
			t.Errorf("smarthost logged %q", got)
		}
	})

	t.Run("plain over TLS only", func(t *testing.T) {
		// smtp_sasl_tls_security_options allows what the plaintext
		// options do not.
		cfg := SASLConfig{TLSSecurityOptions: []string{"noanonymous"}, Passwords: passwords(t, shPlain.nexthop+" ann@example.org:secret")}
		tlsLevel = TLSMay
		r := deliver(cfg, shPlain.nexthop, "alice@sender.test", nil)
		tlsLevel = ""
		if r.Status != transport.Sent {
			t.Fatalf("%+v", r)
		}
		if got := shPlain.login(t, r); got != "PLAIN ann@example.org" {
			t.Errorf("smarthost logged %q", got)
		}
		// The session ends (and is logged) after the delivery.
		peers.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(shPlain.Maillog(), "ehlo=2 starttls=1 auth=1 mail=1") },
			"a session with STARTTLS and AUTH in the smarthost's log")
		if r := deliver(cfg, shPlain.nexthop, "alice@sender.test", nil); r.Status != transport.Deferred ||
			!strings.HasSuffix(r.Text, ": no mechanism available") {
			t.Errorf("without TLS: %+v", r)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		r := deliver(SASLConfig{Passwords: passwords(t, sh.nexthop+" ann@example.org:wrong")}, sh.nexthop, "alice@sender.test", nil)
		want := "SASL authentication failed; server 127.0.0.1[127.0.0.1] said: 535 5.7.8 Error: authentication failed: (reason unavailable)"
		if r.Status != transport.Deferred || r.DSN != "4.7.8" || r.Text != want || r.Relay != "127.0.0.1[127.0.0.1]:"+fmt.Sprint(sh.Port()) {
			t.Errorf("%+v\nwant 4.7.8 %q", r, want)
		}
	})

	t.Run("no mechanism by default", func(t *testing.T) {
		var w warnings
		r := deliver(SASLConfig{Passwords: passwords(t, shPlain.nexthop+" ann@example.org:secret")}, shPlain.nexthop, "alice@sender.test", w.warnf)
		want := "SASL authentication failed; cannot authenticate to server 127.0.0.1[127.0.0.1]: no mechanism available"
		if r.Status != transport.Deferred || r.DSN != "4.7.0" || r.Text != want {
			t.Errorf("%+v\nwant 4.7.0 %q", r, want)
		}
		if got := w.list(); !slices.Equal(got, []string{"SASL authentication failure: No worthy mechs found"}) {
			t.Errorf("warnings %q", got)
		}
	})

	t.Run("host name before nexthop", func(t *testing.T) {
		// For [127.0.0.1]:port the server's name is 127.0.0.1.
		r := deliver(SASLConfig{Passwords: passwords(t, sh.nexthop+" ann@example.org:secret", "127.0.0.1 bob@example.org:hunter2")},
			sh.nexthop, "alice@sender.test", nil)
		if got := sh.login(t, r); got != "CRAM-MD5 bob@example.org" {
			t.Errorf("smarthost logged %q", got)
		}
	})

	t.Run("sender-dependent and reuse", func(t *testing.T) {
		cfg := SASLConfig{Enable: true, SenderDependent: true, Passwords: passwords(t,
			"ann@example.org ann@example.org:secret",
			"@bob.example bob@example.org:hunter2",
			// Not reached while a sender matches: the sender comes first.
			sh.nexthop+" bob@example.org:wrong")}
		tr := New(Config{HeloName: "client.test", SASL: cfg, IdleTimeout: time.Minute})
		defer tr.Close()
		send := func(sender string) transport.Result {
			d := message(sh.nexthop, "x@remote.test")
			d.Sender = sender
			return tr.Deliver(context.Background(), d)[0]
		}
		for _, step := range []struct {
			sender string
			login  string
			use    int // the session's use count: 1 for a new connection
		}{
			{"ann@example.org", "CRAM-MD5 ann@example.org", 1},
			{"someone@bob.example", "CRAM-MD5 bob@example.org", 1},  // other credentials: not ann's session
			{"ann+list@example.org", "CRAM-MD5 ann@example.org", 2}, // ann's again (the extension is stripped)
			{"x@bob.example", "CRAM-MD5 bob@example.org", 2},
		} {
			r := send(step.sender)
			if r.Status != transport.Sent || r.ConnUse != step.use {
				t.Fatalf("%s: %+v, want conn_use=%d", step.sender, r, step.use)
			}
			if got := sh.login(t, r); got != step.login {
				t.Errorf("%s: smarthost logged %q, want %q", step.sender, got, step.login)
			}
		}
		// Without sender-dependent authentication the nexthop's entry
		// counts: a new connection, and the smarthost refuses it.
		cfg.SenderDependent = false
		other := New(Config{HeloName: "client.test", SASL: cfg})
		defer other.Close()
		d := message(sh.nexthop, "x@remote.test")
		d.Sender = "ann@example.org"
		if r := other.Deliver(context.Background(), d)[0]; r.Status != transport.Deferred || r.DSN != "4.7.8" {
			t.Errorf("nexthop's wrong entry: %+v", r)
		}
	})

	t.Run("no credentials, no authenticated session", func(t *testing.T) {
		// Mail without credentials (the null sender here) must not ride
		// on a session that authenticated for other mail: the smarthost
		// then refuses it, as it would a fresh connection.
		cfg := SASLConfig{Enable: true, SenderDependent: true, Passwords: passwords(t, "ann@example.org ann@example.org:secret")}
		tr := New(Config{HeloName: "client.test", SASL: cfg, IdleTimeout: time.Minute})
		defer tr.Close()
		d := message(sh.nexthop, "x@remote.test")
		d.Sender = "ann@example.org"
		if r := tr.Deliver(context.Background(), d)[0]; r.Status != transport.Sent {
			t.Fatalf("ann: %+v", r)
		}
		for _, use := range []int{1, 2} {
			d = message(sh.nexthop, "x@remote.test")
			d.Sender = ""
			r := tr.Deliver(context.Background(), d)[0]
			if r.Status != transport.Bounced || r.ConnUse != use || !strings.Contains(r.Text, "554 5.7.1") {
				t.Errorf("null sender %d: %+v", use, r)
			}
		}
		if n := tr.pool.idleCount(fmt.Sprintf("127.0.0.1|%d|true", sh.Port())); n != 2 {
			t.Errorf("%d sessions cached, want ann's and the unauthenticated one", n)
		}
	})

	t.Run("same texts as Postfix's client", func(t *testing.T) {
		differentialAuth(t, sh, shPlain)
	})
}

// differentialAuth runs a real Postfix client with the same
// smtp_sasl_* settings against the two smarthosts (a wrong password; no
// usable mechanism under the default security options) and compares its
// log with our results.
func differentialAuth(t *testing.T, sh, shPlain smarthost) {
	dir := tempDir(t)
	table := shPlain.nexthop + " ann@example.org:secret\n" + sh.nexthop + " ann@example.org:wrong\n"
	pwFile := filepath.Join(dir, "sasl_passwd")
	if err := os.WriteFile(pwFile, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	client := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: shPlain.nexthop, ExtraMainCf: "smtp_sasl_auth_enable = yes\n" +
		"smtp_sasl_password_maps = texthash:" + pwFile + "\n" +
		"transport_maps = inline:{ wrong.test=smtp:" + sh.nexthop + " }\n"})
	tr := New(Config{HeloName: "client.test"})
	d := message(client.Addr(), "x@remote.test", "y@wrong.test")
	if r := tr.Deliver(context.Background(), d); r[0].Status != transport.Sent || r[1].Status != transport.Sent {
		t.Fatalf("submission to the Postfix client: %+v", r)
	}
	tr.Close()
	status := regexp.MustCompile(`postfix/smtp\[\d+\]: [0-9A-F]+: to=<([^>]+)>, relay=(\S+), delay=[\d.]+, delays=[\d./]+, dsn=([\d.]+), status=(\w+) \((.*)\)\n`)
	var lines [][]string
	peers.WaitFor(t, 30*time.Second, func() bool { lines = status.FindAllStringSubmatch(client.Maillog(), -1); return len(lines) >= 2 }, "the Postfix client's two status lines")

	var w warnings
	ours := New(Config{HeloName: "client.test", Warnf: w.warnf, SASL: SASLConfig{Enable: true, Passwords: passwords(t, strings.Split(strings.TrimSpace(table), "\n")...)}})
	defer ours.Close()
	for _, l := range lines {
		nexthop := shPlain.nexthop
		if l[1] == "y@wrong.test" {
			nexthop = sh.nexthop
		}
		r := ours.Deliver(context.Background(), message(nexthop, l[1]))[0]
		got := []string{r.Relay, r.DSN, r.Status.String(), r.Text}
		if want := l[2:]; !slices.Equal(got, want) {
			t.Errorf("%s:\nours:    %q\npostfix: %q", l[1], got, want)
		}
	}
	for _, warning := range w.list() {
		if !strings.Contains(client.Maillog(), "warning: "+warning+"\n") {
			t.Errorf("Postfix did not warn %q:\n%s", warning, client.Maillog())
		}
	}
	if len(w.list()) == 0 {
		t.Error("no warning logged")
	}
}
