package smtp

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mapopen "sqlmta/mapdrivers/open"
	"sqlmta/mtad/transport"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// passwords writes a texthash table of "key user:pass" lines and returns
// it as the transport's Passwords, the way the node opens
// smtp_sasl_password_maps.
func passwords(t *testing.T, lines ...string) *TablePasswords {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sasl_passwd")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &mapopen.Opener{}
	t.Cleanup(func() { o.Close() })
	return &TablePasswords{Specs: []string{"texthash:" + path}, Open: o.Open, Delimiter: "+"}
}

// warnings collects the transport's warnings.
type warnings struct {
	mu sync.Mutex
	l  []string
}

func (w *warnings) warnf(f string, a ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.l = append(w.l, fmt.Sprintf(f, a...))
}

func (w *warnings) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.l...)
}

func TestChooseMechanism(t *testing.T) {
	for _, tc := range []struct {
		offered string
		opts    []string
		filter  []string
		want    string
	}{
		{"PLAIN LOGIN CRAM-MD5", nil, nil, "CRAM-MD5"},
		{"PLAIN LOGIN", nil, nil, ""}, // Postfix's default: noplaintext
		{"PLAIN LOGIN", []string{"noanonymous"}, nil, "PLAIN"},
		{"LOGIN", []string{"noanonymous"}, nil, "LOGIN"},
		{"login plain", []string{}, nil, "PLAIN"},
		{"PLAIN LOGIN CRAM-MD5", []string{"nodictionary"}, nil, ""},
		{"GSSAPI DIGEST-MD5", []string{}, nil, ""},
		{"PLAIN LOGIN CRAM-MD5", []string{"noanonymous"}, []string{"plain", "login"}, "PLAIN"},
		{"PLAIN LOGIN CRAM-MD5", []string{"noanonymous"}, []string{"!cram-md5", "!plain", "static:all"}, "LOGIN"},
		{"PLAIN LOGIN CRAM-MD5", []string{"noanonymous"}, []string{"!cram-md5"}, ""},
	} {
		sec, err := parseSecurity(tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if m := chooseMechanism(filterMechanisms(tc.filter, strings.Fields(tc.offered)), sec); m != nil {
			got = m.name
		}
		if got != tc.want {
			t.Errorf("%q opts %q filter %q: got %q, want %q", tc.offered, tc.opts, tc.filter, got, tc.want)
		}
	}
	if err := CheckSASLSecurityOptions([]string{"noanonymous", "noplain"}); err == nil {
		t.Error("noplain accepted")
	}
	if err := CheckSASLSecurityOptions([]string{}); err != nil {
		t.Error(err)
	}
}

// authServer is a scripted SMTP server that offers AUTH and checks
// PLAIN, LOGIN and CRAM-MD5 the way a server does, against its own
// users; MAIL needs a successful AUTH. It records every line it reads.
type authServer struct {
	port      int
	mechs     string // the EHLO AUTH parameters; "" offers no AUTH
	users     map[string]string
	challenge string // CRAM-MD5's
	// badChallenge makes LOGIN's first prompt something that is not
	// base64.
	badChallenge bool

	mu    sync.Mutex
	lines []string
	conns int
	mail  []string // "user from" of each accepted message
}

func startAuthServer(t *testing.T, mechs string, users map[string]string, ips ...string) *authServer {
	t.Helper()
	return startAuthServerLike(t, &authServer{mechs: mechs, users: users}, ips...)
}

// startAuthServerLike starts as, configured by its caller, on the ips.
func startAuthServerLike(t *testing.T, as *authServer, ips ...string) *authServer {
	t.Helper()
	as.challenge = "<1896.697170952@postoffice.reston.mci.net>"
	if len(ips) == 0 {
		ips = []string{"127.0.0.1"}
	}
	for _, ip := range ips {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(as.port)))
		if err != nil {
			t.Fatal(err)
		}
		as.port = l.Addr().(*net.TCPAddr).Port
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go as.serve(c)
			}
		}()
	}
	return as
}

func (as *authServer) serve(c net.Conn) {
	defer c.Close()
	as.mu.Lock()
	as.conns++
	as.mu.Unlock()
	r := bufio.NewReader(c)
	reply := func(s string) { fmt.Fprintf(c, "%s\r\n", s) }
	read := func() (string, bool) {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		l, err := r.ReadString('\n')
		l = strings.TrimRight(l, "\r\n")
		as.mu.Lock()
		as.lines = append(as.lines, l)
		as.mu.Unlock()
		return l, err == nil
	}
	reply("220 auth.test ESMTP")
	authed, from := "", ""
	for {
		l, ok := read()
		if !ok {
			return
		}
		f := strings.Fields(l + " ")
		switch verb := strings.ToUpper(f[0]); verb {
		case "EHLO":
			if as.mechs != "" {
				reply("250-auth.test\r\n250-AUTH " + as.mechs + "\r\n250 8BITMIME")
			} else {
				reply("250-auth.test\r\n250 8BITMIME")
			}
		case "AUTH":
			authed = as.auth(f[1:], read, reply)
		case "MAIL":
			if authed == "" && as.users != nil {
				reply("530 5.7.0 Authentication required")
				continue
			}
			from = l
			reply("250 2.1.0 Ok")
		case "RCPT":
			reply("250 2.1.5 Ok")
		case "DATA":
			reply("354 go ahead")
			for {
				l, ok := read()
				if !ok {
					return
				}
				if l == "." {
					break
				}
			}
			as.mu.Lock()
			as.mail = append(as.mail, authed+" "+from)
			as.mu.Unlock()
			reply("250 2.0.0 Ok: queued")
		case "RSET", "NOOP":
			reply("250 2.0.0 Ok")
		case "QUIT":
			reply("221 2.0.0 Bye")
			return
		default:
			reply("502 5.5.2 Error: command not recognized")
		}
	}
}

// auth checks one AUTH exchange and returns the user it authenticated.
func (as *authServer) auth(args []string, read func() (string, bool), reply func(string)) string {
	fail := func() string { reply("535 5.7.8 Error: authentication failed: authentication failure"); return "" }
	ask := func(prompt string) ([]byte, bool) {
		reply("334 " + prompt)
		l, ok := read()
		if !ok || l == "*" {
			reply("501 5.7.0 Authentication aborted")
			return nil, false
		}
		b, err := base64.StdEncoding.DecodeString(l)
		return b, err == nil
	}
	ok := func(user string) string { reply("235 2.7.0 Authentication successful"); return user }
	switch strings.ToUpper(args[0]) {
	case "PLAIN":
		if len(args) != 2 {
			return fail()
		}
		b, _ := base64.StdEncoding.DecodeString(args[1])
		p := strings.Split(string(b), "\x00")
		if len(p) == 3 && p[0] == "" && as.users[p[1]] == p[2] && p[2] != "" {
			return ok(p[1])
		}
	case "LOGIN":
		prompt := b64("Username:")
		if as.badChallenge {
			prompt = "!!! not base64 !!!"
		}
		u, good := ask(prompt)
		if !good {
			return ""
		}
		pw, good := ask(b64("Password:"))
		if good && as.users[string(u)] == string(pw) && len(pw) > 0 {
			return ok(string(u))
		}
	case "CRAM-MD5":
		b, good := ask(b64(as.challenge))
		if !good {
			return ""
		}
		user, digest, _ := strings.Cut(string(b), " ")
		if pw, known := as.users[user]; known {
			_, next := cramMD5(credentials{user, pw})
			want, _ := next([]byte(as.challenge))
			if string(want) == user+" "+digest {
				return ok(user)
			}
		}
	}
	return fail()
}

func (as *authServer) received() (lines, mail []string, conns int) {
	as.mu.Lock()
	defer as.mu.Unlock()
	return append([]string(nil), as.lines...), append([]string(nil), as.mail...), as.conns
}

// TestCRAMMD5KnownAnswer checks the digest against RFC 2195's example.
func TestCRAMMD5KnownAnswer(t *testing.T) {
	ir, next := cramMD5(credentials{"tim", "tanstaaftanstaaf"})
	got, err := next([]byte("<1896.697170952@postoffice.reston.mci.net>"))
	if ir != nil || err != nil || string(got) != "tim b913a602c7eda7a495b4e6e7334d3890" {
		t.Errorf("got %q %v (ir %q)", got, err, ir)
	}
	if _, err := next([]byte("again")); err == nil {
		t.Error("a second challenge was answered")
	}
}

// TestAuthExchanges runs each mechanism against the scripted server and
// checks the lines the client sent.
func TestAuthExchanges(t *testing.T) {
	users := map[string]string{"tim": "tanstaaftanstaaf"}
	for _, tc := range []struct {
		mechs string
		opts  []string
		want  []string // the client's lines from AUTH on
	}{
		{"PLAIN LOGIN CRAM-MD5", nil, []string{"AUTH CRAM-MD5", b64("tim b913a602c7eda7a495b4e6e7334d3890")}},
		{"LOGIN", []string{"noanonymous"}, []string{"AUTH LOGIN", b64("tim"), b64("tanstaaftanstaaf")}},
		{"LOGIN PLAIN", []string{"noanonymous"}, []string{"AUTH PLAIN " + b64("\x00tim\x00tanstaaftanstaaf")}},
	} {
		as := startAuthServer(t, tc.mechs, users)
		nexthop := fmt.Sprintf("[127.0.0.1]:%d", as.port)
		tr := New(Config{HeloName: "client.test", SASL: SASLConfig{Enable: true, SecurityOptions: tc.opts,
			Passwords: passwords(t, nexthop+" tim:tanstaaftanstaaf")}})
		r := tr.Deliver(context.Background(), message(nexthop, "a@dest.test"))[0]
		tr.Close()
		if r.Status != transport.Sent {
			t.Errorf("%s: %+v", tc.mechs, r)
		}
		lines, mail, _ := as.received()
		i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "AUTH ") })
		if i < 0 || !slices.Equal(lines[i:i+len(tc.want)], tc.want) || !strings.HasPrefix(lines[i+len(tc.want)], "MAIL FROM:") {
			t.Errorf("%s: client sent %q, want %q then MAIL", tc.mechs, lines, tc.want)
		}
		if len(mail) != 1 || !strings.HasPrefix(mail[0], "tim MAIL FROM:<alice@sender.test>") {
			t.Errorf("%s: server got %q", tc.mechs, mail)
		}
	}
}

// TestAuthSkipped: no AUTH without credentials for the server, nor when
// the server does not offer it; the mail goes anyway, as in Postfix.
func TestAuthSkipped(t *testing.T) {
	open := startAuthServer(t, "PLAIN LOGIN CRAM-MD5", nil) // accepts mail without AUTH
	noAuth := startAuthServer(t, "", nil)
	for _, as := range []*authServer{open, noAuth} {
		nexthop := fmt.Sprintf("[127.0.0.1]:%d", as.port)
		pw := passwords(t, "[other.test]:587 tim:secret")
		if as == noAuth {
			pw = passwords(t, nexthop+" tim:secret")
		}
		tr := New(Config{HeloName: "client.test", SASL: SASLConfig{Enable: true, Passwords: pw}})
		r := tr.Deliver(context.Background(), message(nexthop, "a@dest.test"))[0]
		tr.Close()
		lines, _, _ := as.received()
		if r.Status != transport.Sent || slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "AUTH") }) {
			t.Errorf("mechs %q: %+v after %q", as.mechs, r, lines)
		}
	}
}

// TestAuthFailures: the texts and codes Postfix gives each failure.
func TestAuthFailures(t *testing.T) {
	users := map[string]string{"tim": "right"}
	as := startAuthServer(t, "PLAIN LOGIN CRAM-MD5", users)
	broken := startAuthServerLike(t, &authServer{mechs: "LOGIN", users: users, badChallenge: true})
	for _, tc := range []struct {
		name   string
		server *authServer
		sasl   SASLConfig
		status transport.Status
		dsn    string
		text   string
		warn   string
	}{
		{"soft bounce", as, SASLConfig{}, transport.Deferred, "4.7.8",
			"SASL authentication failed; server 127.0.0.1[127.0.0.1] said: 535 5.7.8 Error: authentication failed: authentication failure", ""},
		{"hard bounce", as, SASLConfig{HardBounce: true}, transport.Bounced, "5.7.8",
			"SASL authentication failed; server 127.0.0.1[127.0.0.1] said: 535 5.7.8 Error: authentication failed: authentication failure", ""},
		{"filter leaves nothing", as, SASLConfig{MechanismFilter: []string{"gssapi"}}, transport.Deferred, "4.7.0",
			"SASL authentication failed: server 127.0.0.1[127.0.0.1] offered no compatible authentication mechanisms for this type of connection security",
			fmt.Sprintf("127.0.0.1[127.0.0.1]:%d offered no supported AUTH mechanisms: 'PLAIN LOGIN CRAM-MD5'", as.port)},
		{"no worthy mechanism", as, SASLConfig{SecurityOptions: []string{"noactive"}}, transport.Deferred, "4.7.0",
			"SASL authentication failed; cannot authenticate to server 127.0.0.1[127.0.0.1]: no mechanism available",
			"SASL authentication failure: No worthy mechs found"},
		{"bad challenge", broken, SASLConfig{SecurityOptions: []string{}}, transport.Deferred, "4.7.0",
			"SASL authentication failed; cannot authenticate to server 127.0.0.1[127.0.0.1]: bad protocol / cancel", ""},
	} {
		var w warnings
		nexthop := fmt.Sprintf("[127.0.0.1]:%d", tc.server.port)
		tc.sasl.Enable, tc.sasl.Passwords = true, passwords(t, nexthop+" tim:wrong")
		tr := New(Config{HeloName: "client.test", SASL: tc.sasl, Warnf: w.warnf})
		r := tr.Deliver(context.Background(), message(nexthop, "a@dest.test"))[0]
		tr.Close()
		relay := fmt.Sprintf("127.0.0.1[127.0.0.1]:%d", tc.server.port)
		if r.Status != tc.status || r.DSN != tc.dsn || r.Text != tc.text || r.Relay != relay {
			t.Errorf("%s: %+v\nwant %s %q relay=%s", tc.name, r, tc.dsn, tc.text, relay)
		}
		if got := w.list(); (tc.warn != "" && !slices.Contains(got, tc.warn)) || (tc.warn == "" && len(got) > 0) {
			t.Errorf("%s: warnings %q, want %q", tc.name, got, tc.warn)
		}
	}
	if _, mail, _ := as.received(); len(mail) != 0 {
		t.Errorf("mail accepted: %q", mail)
	}
	// The bad challenge was cancelled (RFC 4954) before QUIT.
	if lines, _, _ := broken.received(); !slices.Equal(lines[1:], []string{"AUTH LOGIN", "*", "QUIT"}) {
		t.Errorf("client lines %q", lines)
	}
}

// failingPasswords is a table whose database is down.
type failingPasswords struct{}

func (failingPasswords) Sender(context.Context, string) (string, bool, error) {
	return "", false, errors.New("connection refused")
}

func (failingPasswords) Find(context.Context, string) (string, bool, error) {
	return "", false, errors.New("connection refused")
}

// TestAuthLookupError: a table that fails defers the mail, as Postfix's
// "local data error", and never sends it without the AUTH it may need.
func TestAuthLookupError(t *testing.T) {
	as := startAuthServer(t, "PLAIN LOGIN CRAM-MD5", map[string]string{"tim": "right"})
	var w warnings
	tr := New(Config{HeloName: "client.test", Warnf: w.warnf, SASL: SASLConfig{Enable: true, Passwords: failingPasswords{}}})
	defer tr.Close()
	r := tr.Deliver(context.Background(), message(fmt.Sprintf("[127.0.0.1]:%d", as.port), "a@dest.test"))[0]
	if r.Status != transport.Deferred || r.DSN != "4.3.0" || r.Text != "local data error while talking to 127.0.0.1[127.0.0.1]" {
		t.Errorf("%+v", r)
	}
	if got := w.list(); !slices.Equal(got, []string{"4ABCDEF123: smtp_sasl_password_maps lookup error"}) {
		t.Errorf("warnings %q", got)
	}
}

// TestAuthNextMX: a server that refuses our credentials is a temporary
// failure of that host, so the next MX host gets the mail; each host's
// credentials come from its own name, before the nexthop's.
func TestAuthNextMX(t *testing.T) {
	users := map[string]string{"tim": "right"}
	as := startAuthServer(t, "CRAM-MD5", users, "127.0.0.1", "127.0.0.2")
	dns := dnsServer(t, `
dest.test. MX 10 a.mx.test.
dest.test. MX 20 b.mx.test.
a.mx.test. A 127.0.0.1
b.mx.test. A 127.0.0.2
`)
	pw := passwords(t, "A.mx.test tim:wrong", "b.mx.test tim:right", "dest.test tim:nexthop")
	tr := New(Config{HeloName: "client.test", DNSServer: dns, Port: as.port, SASL: SASLConfig{Enable: true, Passwords: pw}})
	defer tr.Close()
	r := tr.Deliver(context.Background(), message("dest.test", "a@dest.test"))[0]
	if r.Status != transport.Sent || r.Relay != fmt.Sprintf("b.mx.test[127.0.0.2]:%d", as.port) {
		t.Errorf("%+v", r)
	}
	// Both hosts were asked; a.mx.test refused the wrong password.
	lines, mail, conns := as.received()
	auths := 0
	for _, l := range lines {
		if l == "AUTH CRAM-MD5" {
			auths++
		}
	}
	if len(mail) != 1 || auths != 2 || conns != 2 {
		t.Errorf("server: %d connections, %d AUTH, mail %q", conns, auths, mail)
	}
}
