// Package peers runs real SMTP peers from Debian's postfix package — smtp-sink, smtp-source and a private
// Postfix instance — for sqlmta's end-to-end tests, so those tests talk to the software sqlmta must
// interoperate with rather than to a fake.
//
// Every helper takes the test's testing.TB and registers its own cleanup; a helper that fails calls t.Fatal,
// so call them from the test's goroutine. Temporary directories are kept (and their path logged) when the
// test fails, for a look at the dump file or the Postfix maillog.
package peers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sbinDirs are searched after $PATH: the postfix tools live in /usr/sbin, which a non-root PATH often lacks.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// Require returns the path of the peer program bin (smtp-sink, smtp-source, swaks, postfix, …). When it is
// missing the test is skipped, or fails when $CI is set: CI must not silently skip the end-to-end tests.
func Require(t testing.TB, bin string) string {
	t.Helper()
	if p, err := lookPath(bin); err == nil {
		return p
	}
	msg := fmt.Sprintf("peer program %s not found (apt-get install -y postfix swaks)", bin)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func lookPath(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, bin)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found", bin)
}

// requireRoot skips (or, under CI, fails) a test that needs root, e.g. to start a private Postfix.
func requireRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := what + " needs root"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
//
// It picks below the kernel's ephemeral range (32768+): a port from that
// range can be taken by an outgoing connection between this call and the
// daemon's bind, which made Postfix's master fail with "Address already in use".
func FreePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 1000; i++ {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatalf("peers: no free port on 127.0.0.1 in 20000-31999")
	return 0
}

// WaitFor polls cond every 20ms until it returns true, and fails the test with what if that has not
// happened within timeout. It is the one way tests wait: no sleeps.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	if !poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// portOpen reports whether something accepts connections on 127.0.0.1:port.
func portOpen(port int) bool {
	c, err := net.DialTimeout("tcp", addr(port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// tempDir makes a directory that unprivileged daemons (smtp-sink as nobody, Postfix as postfix) can enter:
// t.TempDir's parents are mode 0700. It is removed at cleanup unless the test failed.
func tempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sqlmta-"+prefix+"-")
	if err != nil {
		t.Fatalf("peers: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("peers: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("peers: keeping %s for inspection", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// sourceTimeout bounds one smtp-source run, so that a peer that stops answering fails the test instead of
// hanging it until go test's own timeout.
const sourceTimeout = 5 * time.Minute

// RunSource runs smtp-source with args against addr ("host:port"), failing the test (with its output) when
// it exits non-zero or runs longer than five minutes (or past the test's deadline). It returns the output.
func RunSource(t testing.TB, addr string, args ...string) string {
	t.Helper()
	bin := Require(t, "smtp-source")
	timeout := sourceTimeout
	if d, ok := deadline(t); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append([]string{}, args...), addr)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("smtp-source %s %s: still running after %v; output:\n%s", strings.Join(args, " "), addr, timeout, out)
	}
	if err != nil {
		t.Fatalf("smtp-source %s %s: %v; output:\n%s", strings.Join(args, " "), addr, err, out)
	}
	return string(out)
}

// deadline returns the test's deadline when t is a *testing.T run with -timeout.
func deadline(t testing.TB) (time.Time, bool) {
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		return d.Deadline()
	}
	return time.Time{}, false
}

// SinkOptions configure StartSink.
type SinkOptions struct {
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// Args are extra smtp-sink options, e.g. []string{"-r", "RCPT"} to reply 4xx to every RCPT TO.
	Args []string
}

// Sink is a running smtp-sink that appends every message it accepts to a dump file.
type Sink struct {
	t    testing.TB
	bin  string
	port int
	args []string
	dir  string
	dump string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	stderr  *bytes.Buffer
	scanned int64    // bytes of the dump already parsed
	ids     []string // Message-Id values seen so far, in dump order
}

// StartSink starts smtp-sink on 127.0.0.1 (opts.Port, or a free port) and returns once it accepts
// connections. It is stopped at cleanup.
func StartSink(t testing.TB, opts SinkOptions) *Sink {
	t.Helper()
	s := &Sink{
		t:    t,
		bin:  Require(t, "smtp-sink"),
		port: opts.Port,
		args: append([]string{}, opts.Args...),
		dir:  tempDir(t, "sink"),
	}
	if s.port == 0 {
		s.port = FreePort(t)
	}
	s.dump = filepath.Join(s.dir, "dump")
	// smtp-sink writes each message to a scratch file next to the dump and then appends it, so the
	// directory (not only the file) must belong to the user it runs as.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("peers: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		if err := os.Chown(s.dir, uid, -1); err != nil {
			t.Fatalf("peers: %v", err)
		}
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() && s.stderr != nil && s.stderr.Len() > 0 {
			t.Logf("smtp-sink on port %d said:\n%s", s.port, s.stderr)
		}
	})
	s.Start()
	return s
}

// Start (re)starts a stopped sink on the same port; new messages are appended to the same dump, so
// Count keeps counting across restarts.
func (s *Sink) Start() {
	s.t.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return
	}
	args := []string{}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody") // smtp-sink refuses to run as root
	}
	// The dump name is a strftime template: protect any '%' in the path.
	args = append(args, "-D", strings.ReplaceAll(s.dump, "%", "%%"))
	args = append(args, s.args...)
	// A large backlog: smtp-source and a busy relay open many connections at once.
	args = append(args, addr(s.port), "1024")
	cmd := exec.Command(s.bin, args...)
	if s.stderr == nil {
		s.stderr = new(bytes.Buffer)
	}
	cmd.Stdout, cmd.Stderr = s.stderr, s.stderr
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("peers: starting smtp-sink: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	exited := false
	up := poll(10*time.Second, func() bool {
		select {
		case <-done:
			exited = true
			return true
		default:
		}
		return portOpen(s.port)
	})
	if exited || !up {
		s.Stop()
		s.t.Fatalf("peers: smtp-sink did not start on %s: %s", addr(s.port), s.stderrText())
	}
}

// Stop kills the sink and waits until it has exited; its port is then free. Stopping twice is fine.
func (s *Sink) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

func (s *Sink) stderrText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.TrimSpace(s.stderr.String())
}

// Addr returns "127.0.0.1:port".
func (s *Sink) Addr() string { return addr(s.port) }

// Port returns the port the sink listens on.
func (s *Sink) Port() int { return s.port }

// DumpPath returns the dump file that receives every accepted message.
func (s *Sink) DumpPath() string { return s.dump }

// RecipientsOf returns the envelope recipients (X-Rcpt-Args) of the messages in the dump that contain
// the line marker, e.g. "X-Case: bcc", in dump order.
func (s *Sink) RecipientsOf(marker string) []string {
	s.t.Helper()
	b, err := os.ReadFile(s.dump)
	if err != nil && !os.IsNotExist(err) {
		s.t.Fatal(err)
	}
	var out []string
	rcpt := regexp.MustCompile(`(?m)^X-Rcpt-Args: <([^>]*)>`)
	for _, msg := range strings.Split(string(b), "X-Client-Addr: ") {
		if strings.Contains(msg, "\n"+marker+"\r\n") || strings.Contains(msg, "\n"+marker+"\n") {
			for _, m := range rcpt.FindAllStringSubmatch(msg, -1) {
				out = append(out, m[1])
			}
		}
	}
	return out
}

// Count returns the number of messages in the dump so far, counted as Message-Id header lines
// (every smtp-source message carries a unique one). Count minus the number sent is the duplicates.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scan()
	return len(s.ids)
}

// MessageIDs returns the Message-Id values in the dump so far, in arrival order.
func (s *Sink) MessageIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scan()
	return append([]string(nil), s.ids...)
}

// scan parses the complete lines appended to the dump since the last call. The dump only grows, so polling
// a 10,000-message dump every 20ms stays cheap. The caller holds s.mu.
func (s *Sink) scan() {
	f, err := os.Open(s.dump)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) { // no dump until the first message arrives
			s.t.Errorf("peers: reading sink dump: %v", err)
		}
		return
	}
	defer f.Close()
	if _, err := f.Seek(s.scanned, 0); err != nil {
		s.t.Errorf("peers: reading sink dump: %v", err)
		return
	}
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A long body line cannot be a header: skip the rest of it.
			n := int64(len(line))
			for err == bufio.ErrBufferFull {
				line, err = r.ReadSlice('\n')
				n += int64(len(line))
			}
			if err != nil {
				return // incomplete: read again next time
			}
			s.scanned += n
			continue
		}
		if err != nil {
			return // EOF before '\n': smtp-sink is still appending this line
		}
		s.scanned += int64(len(line))
		if id, ok := messageID(line); ok {
			s.ids = append(s.ids, id)
		}
	}
}

// messageID returns the value of a Message-Id header line (name matched case-insensitively).
func messageID(line []byte) (string, bool) {
	const name = "message-id:"
	if len(line) < len(name) || !strings.EqualFold(string(line[:len(name)]), name) {
		return "", false
	}
	return strings.TrimSpace(string(line[len(name):])), true
}

// PostfixOptions configure StartPostfix.
type PostfixOptions struct {
	// Port for its smtpd at 127.0.0.1; 0 picks a free one.
	Port int
	// Relayhost receives every message, e.g. "[127.0.0.1]:2526". Required.
	Relayhost string
	// ExtraMainCf is appended to the generated main.cf (one "name = value" per line).
	ExtraMainCf string
	// Nameserver, an IP address, makes smtpd resolve through the DNS server on its port 53 (smtpd runs
	// chrooted in the queue directory with its own resolv.conf).
	Nameserver string
}

// Postfix is a running private Postfix instance (see scripts/postfix-peer.sh).
type Postfix struct {
	t      testing.TB
	script string
	dir    string
	port   int
	once   sync.Once
}

// StartPostfix starts a private Postfix 3.7 instance in a temporary directory, listening on 127.0.0.1 and
// relaying everything to opts.Relayhost with Postfix's default settings otherwise, and returns once its
// smtpd accepts connections. It needs root (Postfix's master runs as root); the test is skipped otherwise
// (or fails under $CI). It is stopped at cleanup.
func StartPostfix(t testing.TB, opts PostfixOptions) *Postfix {
	t.Helper()
	Require(t, "postfix")
	requireRoot(t, "a private Postfix instance")
	if opts.Relayhost == "" {
		t.Fatal("peers: StartPostfix needs a Relayhost")
	}
	p := &Postfix{t: t, script: peerScript(t), dir: filepath.Join(tempDir(t, "postfix"), "pf"), port: opts.Port}
	if p.port == 0 {
		p.port = FreePort(t)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("postfix maillog (last lines):\n%s", tail(p.Maillog(), 40))
		}
	})
	cmd := exec.Command(p.script, "start", p.dir, strconv.Itoa(p.port), opts.Relayhost)
	cmd.Env = append(os.Environ(), "POSTFIX_PEER_EXTRA_MAIN_CF="+opts.ExtraMainCf, "POSTFIX_PEER_NAMESERVER="+opts.Nameserver)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("peers: starting postfix: %v\n%s", err, out)
	}
	return p
}

// Stop stops the instance and waits for its master to exit. Stopping twice is fine.
func (p *Postfix) Stop() {
	p.once.Do(func() {
		if out, err := exec.Command(p.script, "stop", p.dir).CombinedOutput(); err != nil {
			p.t.Errorf("peers: stopping postfix: %v\n%s", err, out)
		}
	})
}

// Addr returns "127.0.0.1:port" of its smtpd.
func (p *Postfix) Addr() string { return addr(p.port) }

// Port returns the port of its smtpd.
func (p *Postfix) Port() int { return p.port }

// Dir returns the instance directory (etc/, queue/, data/, maillog).
func (p *Postfix) Dir() string { return p.dir }

// Maillog returns the instance's mail log so far.
func (p *Postfix) Maillog() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// peerScript finds scripts/postfix-peer.sh, which holds the Postfix set-up shared with scripts/bench.sh.
// It looks upwards from the working directory (go test runs in the package directory), then beside this
// source file.
func peerScript(t testing.TB) string {
	t.Helper()
	const rel = "scripts/postfix-peer.sh"
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, rel)
			if _, err := os.Stat(p); err == nil {
				return p
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	t.Fatalf("peers: %s not found above the working directory", rel)
	return ""
}

// ServeTCP listens on a free 127.0.0.1 port and runs handle for each
// connection in its own goroutine, until the test ends: the accept loop of a
// scripted test server. It returns the port.
func ServeTCP(t testing.TB, handle func(net.Conn)) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("peers: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}
