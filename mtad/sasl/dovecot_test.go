package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/textproto"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"sqlmta/internal/peers"
)

// These tests talk to a real Dovecot 2.3 auth server (internal/peers).

var passwords = map[string]string{"ann@example.org": "secret", "bob": "hunter2"}

func startDovecot(t *testing.T, extra map[string]string) *peers.Dovecot {
	t.Helper()
	pw := map[string]string{}
	for _, m := range []map[string]string{passwords, extra} {
		for u, p := range m {
			pw[u] = p
		}
	}
	return peers.StartDovecot(t, peers.DovecotOptions{Users: []string{"ann@example.org"}, Passwords: pw})
}

func newClient(t *testing.T, path string, timeout time.Duration) *Client {
	t.Helper()
	c, err := New(path, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var local = Info{Service: "smtp", LocalIP: "127.0.0.1", RemoteIP: "127.0.0.1"}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// plain is a PLAIN response: no authorization identity, user and password.
func plain(user, pass string) string { return b64("\x00" + user + "\x00" + pass) }

func ptr(s string) *string { return &s }

// authPlain runs PLAIN with an initial response and returns the user.
func authPlain(ctx context.Context, c *Client, user, pass string) (string, error) {
	_, step, err := c.Start(ctx, "PLAIN", ptr(plain(user, pass)), local)
	if err != nil {
		return "", err
	}
	if !step.Done {
		return "", fmt.Errorf("PLAIN with an initial response got a challenge %q", step.Challenge)
	}
	return step.User, nil
}

func failure(t *testing.T, err error) *Failure {
	t.Helper()
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %v (%T) is not a *Failure", err, err)
	}
	return f
}

// requests returns the AUTH lines Dovecot's auth_debug logged, resp hidden.
func requests(d *peers.Dovecot) []string {
	var out []string
	for _, line := range strings.Split(d.Log(), "\n") {
		if _, req, ok := strings.Cut(line, "auth: Debug: client in: "); ok && strings.HasPrefix(req, "AUTH\t") {
			out = append(out, req)
		}
	}
	return out
}

func TestHandshakeListsMechanisms(t *testing.T) {
	d := startDovecot(t, nil)
	want := []Mechanism{
		{Name: "PLAIN", Flags: []string{"plaintext"}},
		{Name: "LOGIN", Flags: []string{"plaintext"}},
		{Name: "CRAM-MD5", Flags: []string{"dictionary", "active"}},
	}
	for _, path := range []string{d.AuthSocket(), "unix:" + d.AuthSocket(), "inet:" + d.AuthAddr()} {
		c := newClient(t, path, 0)
		mechs, err := c.Mechanisms(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !reflect.DeepEqual(mechs, want) {
			t.Errorf("%s: mechanisms %+v, want %+v", path, mechs, want)
		}
		if names, _ := Filter(mechs, []string{"noplaintext", "noanonymous"}); !reflect.DeepEqual(names, []string{"CRAM-MD5"}) {
			t.Errorf("%s: noplaintext leaves %q", path, names)
		}
	}
}

// TestRequestFields checks the AUTH line Dovecot receives: Postfix 3.7's
// fields, "secured" only with TLS, and the initial response last.
func TestRequestFields(t *testing.T) {
	d := startDovecot(t, nil)
	c := newClient(t, d.AuthSocket(), 0)
	ctx := context.Background()
	if _, err := authPlain(ctx, c, "ann@example.org", "secret"); err != nil {
		t.Fatal(err)
	}
	tls := Info{Service: "smtp", LocalIP: "192.0.2.1", RemoteIP: "2001:db8::7", Secured: true}
	if _, _, err := c.Start(ctx, "plain", ptr(plain("bob", "hunter2")), tls); err != nil {
		t.Fatal(err)
	}
	cv, _, err := c.Start(ctx, "LOGIN", nil, Info{Service: "submission"})
	if err != nil {
		t.Fatal(err)
	}
	cv.Close()
	want := []string{
		"AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tresp=<hidden>",
		"AUTH\t2\tPLAIN\tservice=smtp\tnologin\tlip=192.0.2.1\trip=2001:db8::7\tsecured\tresp=<hidden>",
		"AUTH\t3\tLOGIN\tservice=submission\tnologin\tlip=\trip=",
	}
	peers.WaitFor(t, 5*time.Second, func() bool { return len(requests(d)) == len(want) }, "three requests in Dovecot's log")
	if got := requests(d); !reflect.DeepEqual(got, want) {
		t.Errorf("requests:\n%q\nwant\n%q", got, want)
	}
	// The abandoned LOGIN was cancelled, which Dovecot 2.3 takes silently.
	peers.WaitFor(t, 5*time.Second, func() bool { return strings.Contains(d.Log(), "client in: CANCEL\t3\n") }, "CANCEL in Dovecot's log")
	if strings.Contains(d.Log(), "BUG") {
		t.Errorf("Dovecot complains:\n%s", d.Log())
	}
}

func TestPlainWithInitialResponse(t *testing.T) {
	d := startDovecot(t, nil)
	c := newClient(t, d.AuthSocket(), 0)
	user, err := authPlain(context.Background(), c, "ann@example.org", "secret")
	if err != nil || user != "ann@example.org" {
		t.Fatalf("user %q, error %v", user, err)
	}
}

// TestPlainWrongPassword records what Dovecot 2.3 says to a wrong password:
// FAIL with the user and no reason, which Postfix words as "535 5.7.8
// Error: authentication failed: (reason unavailable)".
func TestPlainWrongPassword(t *testing.T) {
	d := startDovecot(t, nil)
	c := newClient(t, d.AuthSocket(), 0)
	for _, user := range []string{"ann@example.org", "nobody@example.org"} {
		_, err := authPlain(context.Background(), c, user, "wrong")
		f := failure(t, err)
		if f.Reason != "" || f.User != user || f.Temporary || f.TempFlag || f.Warning != "" {
			t.Errorf("%s: %+v", user, f)
		}
	}
}

func TestPlainWithoutInitialResponse(t *testing.T) {
	d := startDovecot(t, nil)
	c := newClient(t, d.AuthSocket(), 0)
	ctx := context.Background()
	cv, step, err := c.Start(ctx, "PLAIN", nil, local)
	if err != nil || step.Done || step.Challenge != "" {
		t.Fatalf("start: %+v, %v; want an empty challenge", step, err)
	}
	step, err = cv.Next(ctx, plain("bob", "hunter2"))
	if err != nil || !step.Done || step.User != "bob" {
		t.Fatalf("next: %+v, %v", step, err)
	}
}

func TestLoginTwoSteps(t *testing.T) {
	d := startDovecot(t, nil)
	c := newClient(t, "inet:"+d.AuthAddr(), 0)
	ctx := context.Background()
	cv, step, err := c.Start(ctx, "LOGIN", nil, local)
	if err != nil || step.Challenge != b64("Username:") {
		t.Fatalf("start: %+v, %v", step, err)
	}
	step, err = cv.Next(ctx, b64("bob"))
	if err != nil || step.Challenge != b64("Password:") {
		t.Fatalf("username: %+v, %v", step, err)
	}
	step, err = cv.Next(ctx, b64("hunter2"))
	if err != nil || !step.Done || step.User != "bob" {
		t.Fatalf("password: %+v, %v", step, err)
	}
	if _, err := cv.Next(ctx, b64("more")); err == nil {
		t.Error("Next after Done succeeded")
	}
}

// TestCramMD5 runs a mechanism whose first challenge comes from the server.
func TestCramMD5(t *testing.T) {
	d := startDovecot(t, nil)
	c := newClient(t, d.AuthSocket(), 0)
	ctx := context.Background()
	cv, step, err := c.Start(ctx, "CRAM-MD5", nil, local)
	if err != nil {
		t.Fatal(err)
	}
	challenge, err := base64.StdEncoding.DecodeString(step.Challenge)
	if err != nil || !strings.HasPrefix(string(challenge), "<") {
		t.Fatalf("challenge %q: %v", step.Challenge, err)
	}
	mac := hmac.New(md5.New, []byte("hunter2"))
	mac.Write(challenge)
	step, err = cv.Next(ctx, b64("bob "+hex.EncodeToString(mac.Sum(nil))))
	if err != nil || !step.Done || step.User != "bob" {
		t.Fatalf("response: %+v, %v", step, err)
	}
}

// TestUnknownMechanism: an unknown mechanism is refused here, with Postfix's
// text, and never sent: Dovecot would drop the connection and with it the
// conversation that another session has in progress.
func TestUnknownMechanism(t *testing.T) {
	d := startDovecot(t, nil)
	c := newClient(t, d.AuthSocket(), 0)
	ctx := context.Background()
	other, _, err := c.Start(ctx, "LOGIN", nil, local)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mech string
		info Info
	}{
		{"XYZZY", local},
		{"CRAM-MD5", Info{Service: "smtp", Mechanisms: []string{"PLAIN", "LOGIN"}}},
	} {
		_, _, err := c.Start(ctx, tc.mech, nil, tc.info)
		if f := failure(t, err); f.Reason != ReasonInvalidMechanism || f.Temporary {
			t.Errorf("%s: %+v", tc.mech, f)
		}
	}
	if _, err := other.Next(ctx, b64("bob")); err != nil {
		t.Fatalf("the other conversation: %v", err)
	}
	if step, err := other.Next(ctx, b64("hunter2")); err != nil || step.User != "bob" {
		t.Fatalf("the other conversation: %+v, %v", step, err)
	}
	if n := connections(t, d, 1); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// connections counts the clients Dovecot saw, once its log (written by a
// process of its own, a little later) shows the replies to all requests.
func connections(t *testing.T, d *peers.Dovecot, replies int) int {
	t.Helper()
	peers.WaitFor(t, 5*time.Second, func() bool {
		log := d.Log()
		return strings.Count(log, "client passdb out: OK")+strings.Count(log, "client passdb out: FAIL") >= replies
	}, "Dovecot's log of the replies")
	return strings.Count(d.Log(), "auth client connected")
}

// TestInvalidBase64: what is not in the base64 alphabet is refused here
// with Postfix's texts; what is, but does not decode, gets Dovecot's own
// (the same words).
func TestInvalidBase64(t *testing.T) {
	d := startDovecot(t, nil)
	c := newClient(t, d.AuthSocket(), 0)
	ctx := context.Background()
	_, _, err := c.Start(ctx, "PLAIN", ptr("!!!!"), local)
	if f := failure(t, err); f.Reason != ReasonInvalidInitial || f.Temporary {
		t.Errorf("initial: %+v", f)
	}
	_, _, err = c.Start(ctx, "PLAIN", ptr("A"), local)
	if f := failure(t, err); f.Reason != ReasonInvalidInitial || f.Temporary {
		t.Errorf("initial from Dovecot: %+v", f)
	}
	cv, _, err := c.Start(ctx, "PLAIN", nil, local)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cv.Next(ctx, "bad response")
	if f := failure(t, err); f.Reason != ReasonInvalidContinuation || f.Temporary {
		t.Errorf("continued: %+v", f)
	}
	cv, _, err = c.Start(ctx, "PLAIN", nil, local)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cv.Next(ctx, "A")
	if f := failure(t, err); f.Reason != ReasonInvalidContinuation || f.Temporary {
		t.Errorf("continued from Dovecot: %+v", f)
	}
}

// TestConcurrentConversations runs many two-step exchanges at once over the
// Client's one connection; each session must get its own answer.
func TestConcurrentConversations(t *testing.T) {
	const n = 24
	users := map[string]string{}
	for i := 0; i < n; i++ {
		users[fmt.Sprintf("user%02d", i)] = fmt.Sprintf("pass%02d", i)
	}
	d := startDovecot(t, users)
	c := newClient(t, d.AuthSocket(), 0)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			user, pass := fmt.Sprintf("user%02d", i), fmt.Sprintf("pass%02d", i)
			wrong := i%4 == 3
			if wrong {
				pass = "wrong"
			}
			var step Step
			var err error
			if i%2 == 0 {
				var cv *Conversation
				if cv, step, err = c.Start(ctx, "LOGIN", nil, local); err == nil {
					if step, err = cv.Next(ctx, b64(user)); err == nil {
						step, err = cv.Next(ctx, b64(pass))
					}
				}
			} else {
				var cv *Conversation
				if cv, _, err = c.Start(ctx, "PLAIN", nil, local); err == nil {
					step, err = cv.Next(ctx, plain(user, pass))
				}
			}
			switch {
			case wrong:
				var f *Failure
				if !errors.As(err, &f) || f.User != user || f.Temporary {
					errs <- fmt.Errorf("%s with a wrong password: %+v, %v", user, step, err)
				}
			case err != nil || !step.Done || step.User != user:
				errs <- fmt.Errorf("%s: %+v, %v", user, step, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := connections(t, d, n); got != 1 {
		t.Errorf("%d connections, want 1", got)
	}
}

// TestReconnectAfterRestart: Dovecot restarting between two requests is not
// seen by the second, over either kind of socket; an exchange in progress
// when it goes is lost, temporarily.
func TestReconnectAfterRestart(t *testing.T) {
	d := startDovecot(t, nil)
	ctx := context.Background()
	for _, path := range []string{d.AuthSocket(), "inet:" + d.AuthAddr()} {
		c := newClient(t, path, 0)
		if _, err := authPlain(ctx, c, "bob", "hunter2"); err != nil {
			t.Fatal(err)
		}
		cv, _, err := c.Start(ctx, "LOGIN", nil, local)
		if err != nil {
			t.Fatal(err)
		}
		d.Restart()
		_, err = cv.Next(ctx, b64("bob"))
		if f := failure(t, err); !f.Temporary || f.Reason != ReasonConnectionLost {
			t.Errorf("%s: exchange across the restart: %+v", path, f)
		}
		if user, err := authPlain(ctx, c, "bob", "hunter2"); err != nil || user != "bob" {
			t.Errorf("%s: after the restart: %q, %v", path, user, err)
		}
	}
}

// TestUnreachable: no server gives a temporary failure at once, with
// Postfix's warning; the reason is empty, as Postfix's
// "(reason unavailable)" shows.
func TestUnreachable(t *testing.T) {
	dir := t.TempDir()
	port := peers.FreePort(t)
	for _, tc := range []struct{ path, warning string }{
		{filepath.Join(dir, "auth-client"), "SASL: Connect to Dovecot auth socket '" + filepath.Join(dir, "auth-client") + "' failed: No such file or directory"},
		{fmt.Sprintf("inet:127.0.0.1:%d", port), fmt.Sprintf("SASL: Connect to Dovecot auth socket 'inet:127.0.0.1:%d' failed: Connection refused", port)},
	} {
		c := newClient(t, tc.path, 0)
		start := time.Now()
		_, _, err := c.Start(context.Background(), "PLAIN", ptr(plain("bob", "hunter2")), local)
		f := failure(t, err)
		if !f.Temporary || f.Reason != "" || f.Warning != tc.warning {
			t.Errorf("%s: %+v", tc.path, f)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("%s: failed after %v", tc.path, el)
		}
		if _, err := c.Mechanisms(context.Background()); err == nil || err.(*Failure).Warning != tc.warning {
			t.Errorf("%s: Mechanisms: %v", tc.path, err)
		}
	}
}

// TestWrongSocket: the auth-master socket sends no MECH before SPID.
func TestWrongSocket(t *testing.T) {
	d := startDovecot(t, nil)
	c := newClient(t, filepath.Join(d.Dir(), "run", "auth-master"), 0)
	_, err := c.Mechanisms(context.Background())
	if f := failure(t, err); !f.Temporary || f.Warning != "SASL: Connected to wrong auth socket (auth-master instead of auth-client)" {
		t.Errorf("%+v", f)
	}
}

// TestSameRequestAsPostfix has Postfix 3.7's smtpd and this package
// authenticate against the same Dovecot and compares the AUTH lines it
// logged (needs root and Postfix; skipped otherwise).
func TestSameRequestAsPostfix(t *testing.T) {
	d := startDovecot(t, nil)
	sink := peers.StartSink(t, peers.SinkOptions{})
	pf := peers.StartPostfix(t, peers.PostfixOptions{
		Relayhost:   fmt.Sprintf("[127.0.0.1]:%d", sink.Port()),
		ExtraMainCf: "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = inet:" + d.AuthAddr(),
	})
	smtp, err := textproto.Dial("tcp", pf.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer smtp.Close()
	if _, _, err := smtp.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		cmd  string
		code int
	}{
		{"EHLO client.example", 250},
		{"AUTH PLAIN " + plain("bob", "wrong"), 535},
		{"AUTH LOGIN", 334}, {b64("bob"), 334}, {b64("hunter2"), 235},
		{"QUIT", 221},
	} {
		if err := smtp.PrintfLine("%s", step.cmd); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := smtp.ReadResponse(step.code); err != nil {
			t.Fatalf("%s: %s: %v", step.cmd, msg, err)
		}
	}

	c := newClient(t, d.AuthSocket(), 0)
	ctx := context.Background()
	if _, err := authPlain(ctx, c, "bob", "wrong"); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	cv, _, err := c.Start(ctx, "LOGIN", nil, local)
	if err != nil {
		t.Fatal(err)
	}
	cv.Close()
	peers.WaitFor(t, 5*time.Second, func() bool { return len(requests(d)) == 4 }, "four requests in Dovecot's log")
	// The ids count each client's own requests.
	got := requests(d)
	for i := range got {
		f := strings.Split(got[i], "\t")
		f[1] = "ID"
		got[i] = strings.Join(f, "\t")
	}
	for i := 0; i < 2; i++ {
		if got[i] != got[i+2] {
			t.Errorf("Postfix sent %q, we sent %q", got[i], got[i+2])
		}
		t.Logf("both sent %q", got[i])
	}
}
