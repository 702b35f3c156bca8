package peers

import (
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"testing"
	"time"
)

// Postgrey is a running postgrey (Debian's package): a real greylisting
// policy server speaking Postfix's policy delegation protocol on a
// loopback port.
type Postgrey struct {
	port int
}

// StartPostgrey starts postgrey on 127.0.0.1 with its own database
// directory and the given greylisting delay, and returns once it accepts
// connections; it is stopped at cleanup. Its answer to a new triplet is
// "action=DEFER_IF_PERMIT Greylisted, see …" until delay has passed.
func StartPostgrey(t testing.TB, delay time.Duration) *Postgrey {
	t.Helper()
	bin := Require(t, "postgrey")
	p := &Postgrey{port: FreePort(t)}
	dir := tempDir(t, "postgrey")
	// postgrey drops its privileges to --user; as root that is its own
	// system user, which must own the database directory.
	me, err := user.Current()
	if err != nil {
		t.Fatalf("peers: %v", err)
	}
	runAs, group := me.Username, ""
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgrey")
		if err != nil {
			t.Fatalf("peers: postgrey needs its system user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("peers: %v", err)
		}
		runAs, group = "postgrey", "postgrey"
	} else if g, err := user.LookupGroupId(me.Gid); err == nil {
		group = g.Name
	}
	args := []string{
		"--inet=127.0.0.1:" + strconv.Itoa(p.port), "--dbdir=" + dir,
		"--delay=" + strconv.Itoa(int(delay.Seconds())), "--user=" + runAs, "--group=" + group,
		"--pidfile=" + dir + "/pid", "--hostname=postgrey.test",
	}
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("peers: postgrey: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() && out.Len() > 0 {
			t.Logf("postgrey said:\n%s", out.String())
		}
	})
	if !poll(30*time.Second, func() bool { return portOpen(p.port) }) {
		t.Fatalf("peers: postgrey did not listen on %d:\n%s", p.port, out.String())
	}
	return p
}

// Addr is its host:port.
func (p *Postgrey) Addr() string { return addr(p.port) }
