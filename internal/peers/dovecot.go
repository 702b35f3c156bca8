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
}

// Dovecot is a running private Dovecot (Debian's dovecot-core and
// dovecot-lmtpd) that serves only LMTP, on a loopback port and on a UNIX
// socket, and delivers into Maildirs under its temporary directory.
type Dovecot struct {
	t      testing.TB
	dir    string
	port   int
	cmd    *exec.Cmd
	done   chan struct{}
	output *bytes.Buffer
	once   sync.Once
}

// StartDovecot writes a private dovecot.conf (no system configuration is
// read), starts `dovecot -F -c CONF` and returns once both listeners accept
// connections. It is stopped at cleanup. Mail is stored as user mail_uid:
// the test's uid, or nobody's when the test runs as root (Dovecot refuses
// to deliver as root).
func StartDovecot(t testing.TB, opts DovecotOptions) *Dovecot {
	t.Helper()
	bin := Require(t, "dovecot")
	d := &Dovecot{t: t, dir: tempDir(t, "dovecot"), port: opts.Port, output: new(bytes.Buffer)}
	if d.port == 0 {
		d.port = FreePort(t)
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
	var users strings.Builder
	for _, u := range opts.Users {
		fmt.Fprintf(&users, "%s::%d:%d::%s::\n", u, uid, gid, d.MailDir(u))
	}
	for _, u := range opts.FullUsers {
		fmt.Fprintf(&users, "%s::%d:%d::%s::userdb_quota_rule=*:bytes=1\n", u, uid, gid, d.MailDir(u))
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(d.dir, name), []byte(text), 0o644); err != nil {
			t.Fatalf("peers: %v", err)
		}
	}
	write("users", users.String())
	write("dovecot.conf", fmt.Sprintf(dovecotConf, d.dir, d.port, internal, login))

	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("dovecot log (last lines):\n%s\n%s", tail(d.Log(), 40), d.output)
		}
	})
	d.cmd = exec.Command(bin, "-F", "-c", filepath.Join(d.dir, "dovecot.conf"))
	d.cmd.Stdout, d.cmd.Stderr = d.output, d.output
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("peers: starting dovecot: %v", err)
	}
	d.done = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.done) }()
	exited := false
	up := poll(30*time.Second, func() bool {
		select {
		case <-d.done:
			exited = true
			return true
		default:
		}
		_, err := os.Stat(d.Socket())
		return err == nil && portOpen(d.port)
	})
	if exited || !up {
		d.Stop()
		t.Fatalf("peers: dovecot did not start: %s\n%s", d.output, d.Log())
	}
	return d
}

// dovecotConf takes the directory, the LMTP port and the internal and login
// users. Logging goes to a file in the directory (there is no syslog).
const dovecotConf = `# sqlmta test peer: LMTP only, everything under %[1]s
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

// Stop ends Dovecot (SIGTERM to its master, which takes its children along)
// and waits for it to exit. Stopping twice is fine.
func (d *Dovecot) Stop() {
	d.once.Do(func() {
		if d.cmd == nil || d.cmd.Process == nil {
			return
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(20 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	})
}

// Addr returns "127.0.0.1:port" of the LMTP listener.
func (d *Dovecot) Addr() string { return addr(d.port) }

// Port returns the LMTP port.
func (d *Dovecot) Port() int { return d.port }

// Socket returns the path of the LMTP UNIX socket.
func (d *Dovecot) Socket() string { return filepath.Join(d.dir, "run", "lmtp") }

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
