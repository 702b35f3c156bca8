package peers

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DovecotOptions configure StartDovecot.
type DovecotOptions struct {
	// Port of its LMTP listener on 127.0.0.1; 0 picks a free one.
	Port int
	// Users are the addresses Dovecot knows (its passwd-file userdb); any
	// other recipient gets "550 5.1.1 <addr> User doesn't exist: addr".
	Users []string
	// FullUsers are known too but have a one-byte quota, so a delivery to
	// them fails after DATA with "452 4.2.2 <addr> Quota exceeded (mailbox
	// for user is full)" (quota_full_tempfail = yes): a real per-recipient 4xx.
	FullUsers []string
	// Passwords let users authenticate through the auth service (PLAIN,
	// LOGIN, CRAM-MD5), stored as {PLAIN}secret. A name that is in neither
	// Users nor FullUsers is added as a user; users without a password
	// cannot authenticate.
	Passwords map[string]string
}

// Dovecot is a running private Dovecot (Debian's dovecot-core and
// dovecot-lmtpd) that serves LMTP, on a loopback port and on a UNIX socket,
// and delivers into Maildirs under its temporary directory. Its auth
// service answers SASL clients (smtpd_sasl_type = dovecot) on the
// auth-client UNIX socket and on a loopback port.
type Dovecot struct {
	t        testing.TB
	bin      string
	dir      string
	port     int
	authPort int
	output   *bytes.Buffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartDovecot writes a private dovecot.conf (no system configuration is
// read), starts `dovecot -F -c CONF` and returns once its listeners accept
// connections. It is stopped at cleanup. Mail is stored as user mail_uid:
// the test's uid, or nobody's when the test runs as root (Dovecot refuses
// to deliver as root).
func StartDovecot(t testing.TB, opts DovecotOptions) *Dovecot {
	t.Helper()
	d := &Dovecot{t: t, bin: Require(t, "dovecot"), dir: tempDir(t, "dovecot"), port: opts.Port, output: new(bytes.Buffer)}
	if d.port == 0 {
		d.port = FreePort(t)
	}
	d.authPort = FreePort(t)
	for d.authPort == d.port {
		d.authPort = FreePort(t)
	}
	uid, gid := os.Getuid(), os.Getgid()
	me, err := user.Current()
	if err != nil {
		t.Fatalf("peers: %v", err)
	}
	// Dovecot's own processes run as default_internal_user and
	// default_login_user; as root those are Debian's dovecot and dovenull
	// users, otherwise everything runs as the test's user.
	internal, login := me.Username, me.Username
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("peers: %v", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		internal, login = "dovecot", "dovenull"
	}
	for _, sub := range []string{"run", "mail"} {
		if err := os.Mkdir(filepath.Join(d.dir, sub), 0o755); err != nil {
			t.Fatalf("peers: %v", err)
		}
	}
	if err := os.Chown(filepath.Join(d.dir, "mail"), uid, gid); err != nil {
		t.Fatalf("peers: %v", err)
	}
	// passwd-file lines: user:password:uid:gid:gecos:home:shell:extra.
	var users strings.Builder
	listed := map[string]bool{}
	line := func(u, extra string) {
		pass := ""
		if p, ok := opts.Passwords[u]; ok {
			pass = "{PLAIN}" + p
		}
		fmt.Fprintf(&users, "%s:%s:%d:%d::%s::%s\n", u, pass, uid, gid, d.MailDir(u), extra)
		listed[u] = true
	}
	for _, u := range opts.Users {
		line(u, "")
	}
	for _, u := range opts.FullUsers {
		line(u, "userdb_quota_rule=*:bytes=1")
	}
	var rest []string
	for u := range opts.Passwords {
		if !listed[u] {
			rest = append(rest, u)
		}
	}
	sort.Strings(rest)
	for _, u := range rest {
		line(u, "")
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(d.dir, name), []byte(text), 0o644); err != nil {
			t.Fatalf("peers: %v", err)
		}
	}
	write("users", users.String())
	write("dovecot.conf", fmt.Sprintf(dovecotConf, d.dir, d.port, internal, login, d.authPort))

	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("dovecot log (last lines):\n%s\n%s", tail(d.Log(), 40), d.output)
		}
	})
	d.start()
	return d
}

// start runs the master and waits until every listener accepts connections.
func (d *Dovecot) start() {
	d.t.Helper()
	cmd := exec.Command(d.bin, "-F", "-c", filepath.Join(d.dir, "dovecot.conf"))
	cmd.Stdout, cmd.Stderr = d.output, d.output
	// Its own process group, for Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("peers: starting dovecot: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	d.mu.Lock()
	d.cmd, d.done = cmd, done
	d.mu.Unlock()
	exited := false
	up := poll(30*time.Second, func() bool {
		select {
		case <-done:
			exited = true
			return true
		default:
		}
		for _, sock := range []string{d.Socket(), d.AuthSocket()} {
			if _, err := os.Stat(sock); err != nil {
				return false
			}
		}
		return portOpen(d.port) && portOpen(d.authPort)
	})
	if exited || !up {
		d.Stop()
		d.t.Fatalf("peers: dovecot did not start: %s\n%s", d.output, d.Log())
	}
}

// dovecotConf takes the directory, the LMTP port, the internal and login
// users and the auth port. Logging goes to a file in the directory (there is
// no syslog). auth_debug logs each request a SASL client sends ("client in:
// AUTH…", passwords hidden), for tests that check the fields. Failed
// authentications are answered at once rather than after
// auth_failure_delay's 2s, and the anvil-auth-penalty socket is closed
// (mode 0, as Dovecot documents) so that a test's failures from 127.0.0.1
// do not delay its next request from there by up to 15s.
const dovecotConf = `# sqlmta test peer: LMTP and SASL auth, everything under %[1]s
base_dir = %[1]s/run
state_dir = %[1]s/run
log_path = %[1]s/dovecot.log
instance_name = sqlmta-test-%[2]d
protocols = lmtp
ssl = no
listen = 127.0.0.1
default_internal_user = %[3]s
default_login_user = %[4]s
mail_location = maildir:%[1]s/mail/%%u
mail_plugins = quota
quota_full_tempfail = yes
plugin {
  quota = maildir:User quota
}
userdb {
  driver = passwd-file
  args = %[1]s/users
}
passdb {
  driver = passwd-file
  args = %[1]s/users
}
auth_mechanisms = plain login cram-md5
auth_failure_delay = 0
auth_debug = yes
service auth {
  unix_listener auth-client {
    mode = 0666
  }
  inet_listener auth {
    address = 127.0.0.1
    port = %[5]d
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %[2]d
  }
  unix_listener lmtp {
    mode = 0666
  }
}
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
`

// Stop ends Dovecot and waits until every one of its processes has exited,
// so that its ports are free again. Stopping twice is fine.
//
// SIGTERM goes to the whole process group, not only to the master: told
// alone, the master gives its auth and lmtp children 6s to finish, and an
// auth process with a client still connected more than 20s. Children still
// starting up do not act on SIGTERM at once, so after a second the group
// gets SIGKILL: a test peer has nothing to save (LMTP answers only once the
// mail is on disk).
func (d *Dovecot) Stop() {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.cmd, d.done = nil, nil
	d.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	pgid := cmd.Process.Pid
	gone := func() bool { return !groupRunning(pgid) }
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	if !poll(time.Second, gone) {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	<-done
	if !poll(10*time.Second, gone) {
		d.t.Errorf("peers: dovecot processes of group %d still running after SIGKILL", pgid)
	}
}

// groupRunning reports whether a process of group pgid runs. Zombies do not
// count: they hold no sockets, and once the master is gone only init reaps
// them, in its own time.
func groupRunning(pgid int) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

// Restart stops Dovecot and starts it again with the same configuration,
// ports and mail, returning once it accepts connections: every client
// connection, to LMTP or to auth, is dropped on the way.
func (d *Dovecot) Restart() {
	d.t.Helper()
	d.Stop()
	d.start()
}

// Addr returns "127.0.0.1:port" of the LMTP listener.
func (d *Dovecot) Addr() string { return addr(d.port) }

// Port returns the LMTP port.
func (d *Dovecot) Port() int { return d.port }

// Socket returns the path of the LMTP UNIX socket.
func (d *Dovecot) Socket() string { return filepath.Join(d.dir, "run", "lmtp") }

// AuthSocket returns the path of the auth service's auth-client UNIX
// socket, the smtpd_sasl_path of a Postfix using this Dovecot.
func (d *Dovecot) AuthSocket() string { return filepath.Join(d.dir, "run", "auth-client") }

// AuthAddr returns "127.0.0.1:port" of the auth service's TCP listener
// (smtpd_sasl_path = inet:127.0.0.1:port).
func (d *Dovecot) AuthAddr() string { return addr(d.authPort) }

// AuthPort returns the auth service's TCP port.
func (d *Dovecot) AuthPort() int { return d.authPort }

// Dir returns the instance directory (dovecot.conf, users, mail/, run/).
func (d *Dovecot) Dir() string { return d.dir }

// MailDir returns the Maildir of user (mail_location maildir:DIR/mail/%u).
func (d *Dovecot) MailDir(user string) string { return filepath.Join(d.dir, "mail", user) }

// Messages returns the contents of the messages in user's INBOX (new/ and
// cur/), in file-name order: Dovecot names them by delivery time.
func (d *Dovecot) Messages(user string) []string {
	var names []string
	for _, sub := range []string{"new", "cur"} {
		m, _ := filepath.Glob(filepath.Join(d.MailDir(user), sub, "*"))
		names = append(names, m...)
	}
	sort.Slice(names, func(i, j int) bool { return filepath.Base(names[i]) < filepath.Base(names[j]) })
	var out []string
	for _, n := range names {
		if b, err := os.ReadFile(n); err == nil {
			out = append(out, string(b))
		}
	}
	return out
}

// Log returns Dovecot's log so far.
func (d *Dovecot) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.log"))
	return string(b)
}
