package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/internal/testdb"
)

// toolsDir is where buildTools put them; TestMain removes it.
var toolsDir string

// buildTools builds mtactl (with its sendmail and postfix links) and the
// postdrop helper into a directory every user may search, once.
var buildTools = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("/tmp", "sqlmta-tools")
	if err != nil {
		return "", err
	}
	toolsDir = dir
	os.Chmod(dir, 0o755)
	for _, b := range []string{"mtactl", "postdrop"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, b), "../"+b).CombinedOutput(); err != nil {
			return "", fmt.Errorf("build %s: %v\n%s", b, err, out)
		}
	}
	// postfix start runs the mtad beside it.
	if err := os.Symlink(mtadBin, filepath.Join(dir, "mtad")); err != nil {
		return "", err
	}
	for _, l := range []string{"sendmail", "postfix"} {
		if err := os.Symlink("mtactl", filepath.Join(dir, l)); err != nil {
			return "", err
		}
	}
	return dir, nil
})

func tools(t *testing.T) string {
	t.Helper()
	dir, err := buildTools()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// sendmailCmd is sendmail with d's configuration, fed in.
func (d *daemon) sendmailCmd(t *testing.T, in string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(tools(t), "sendmail"), append([]string{"-C", d.dir}, args...)...)
	cmd.Stdin = strings.NewReader(in)
	return cmd
}

func (d *daemon) maildropFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(d.dir, "spool", "maildrop"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestSendmailWhileDown submits with sendmail while mtad is stopped: the
// message waits in the maildrop and is delivered once mtad starts.
func TestSendmailWhileDown(t *testing.T) {
	// The maildrop lives under this test's own queue_directory.
	d := startDaemon(t, testdb.SQLiteURL(t), "queue_directory = $config_directory/spool")
	d.stop()

	msg := "Subject: while down\nTo: carol@localhost\nCc: dave@localhost\nBcc: erin@localhost\n\nqueued by sendmail\n"
	if out, err := d.sendmailCmd(t, msg, "-t", "-f", "alice@example.org", "-F", "Alice Example").CombinedOutput(); err != nil {
		t.Fatalf("sendmail: %v %s", err, out)
	}
	if files := d.maildropFiles(t); len(files) != 1 {
		t.Fatalf("maildrop holds %d files, want 1", len(files))
	}
	d.start()
	for _, u := range []string{"carol", "dave", "erin"} {
		got := d.waitMail(t, u, "queued by sendmail")
		if strings.Contains(got, "Bcc:") || strings.Contains(got, "erin@localhost\n") && u != "erin" {
			t.Errorf("%s got a Bcc header:\n%s", u, got)
		}
		if !strings.Contains(got, "Subject: while down") {
			t.Errorf("%s: message:\n%s", u, got)
		}
	}
	d.waitLog(t, `postfix/pickup\[\d+\]: [0-9A-F]+: uid=0 from=<alice@example\.org>`,
		`postfix/virtual\[\d+\]: [0-9A-F]+: to=<erin@localhost>, relay=virtual, .*status=sent`)
	peers.WaitFor(t, 10*time.Second, func() bool { return len(d.maildropFiles(t)) == 0 }, "an empty maildrop")

	// postfix status/stop drive the running mtad through its pid file.
	post := func(args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(tools(t), "postfix"), append([]string{"-c", d.dir}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := post("status"); err != nil || !strings.Contains(out, fmt.Sprintf("is running: PID: %d", d.cmd.Process.Pid)) {
		t.Errorf("postfix status: %v %s", err, out)
	}
	if out, err := post("stop"); err != nil {
		t.Errorf("postfix stop: %v %s", err, out)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Errorf("mtad after postfix stop: %v", err)
		}
		d.cmd = nil
	case <-time.After(60 * time.Second):
		t.Fatal("mtad still runs after postfix stop")
	}
	if out, err := post("status"); err == nil || !strings.Contains(out, "is not running") {
		t.Errorf("postfix status after stop: %v %s", err, out)
	}
	// postfix start runs mtad in the background; stop ends it.
	if out, err := post("start"); err != nil {
		t.Fatalf("postfix start: %v %s", err, out)
	}
	if out, err := post("start"); err == nil || !strings.Contains(out, "is already running") {
		t.Errorf("second postfix start: %v %s", err, out)
	}
	if out, err := post("stop"); err != nil {
		t.Errorf("postfix stop: %v %s", err, out)
	}
}

// TestSendmailLocalUser submits as an unprivileged user through the
// set-gid postdrop: the pickup line shows that user's uid; the user can
// neither read, list nor remove another user's submission, nor write into
// the maildrop, nor make postdrop record another uid; a file whose
// envelope claims another uid is logged with its owner's.
func TestSendmailLocalUser(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run as root to test submission as a local user")
		}
		t.Skip("needs root to create a local user and a set-gid helper")
	}
	peers.Require(t, "useradd")
	grp, err := user.LookupGroup("postdrop")
	if err != nil {
		if out, err := exec.Command("groupadd", "--system", "postdrop").CombinedOutput(); err != nil {
			t.Fatalf("groupadd postdrop: %v %s", err, out)
		}
		if grp, err = user.LookupGroup("postdrop"); err != nil {
			t.Fatal(err)
		}
	}
	gid, _ := strconv.Atoi(grp.Gid)
	bin := tools(t)
	// The helper gets its group and set-gid bit, as the install does.
	pd := filepath.Join(bin, "postdrop")
	if err := os.Chown(pd, 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pd, 0o755|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}

	name := fmt.Sprintf("sqlmtas%d", os.Getpid()%100000)
	if out, err := exec.Command("useradd", "-M", "-d", "/nonexistent", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	ugid, _ := strconv.Atoi(u.Gid)
	asUser := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(ugid), Groups: []uint32{}}}
		cmd.Dir = "/"
		return cmd
	}

	d := startDaemon(t, testdb.SQLiteURL(t), "queue_directory = $config_directory/spool")
	q := filepath.Join(d.dir, "spool")
	// The user must reach main.cf and queue_directory; t.TempDir's are 0700.
	os.Chmod(d.dir, 0o755)
	os.Chmod(filepath.Dir(d.dir), 0o755)
	d.stop()
	md := filepath.Join(q, "maildrop")

	// root's submission, waiting in the maildrop.
	if out, err := d.sendmailCmd(t, "Subject: root's\n\nsecret of root\n", "carol@localhost").CombinedOutput(); err != nil {
		t.Fatalf("sendmail as root: %v %s", err, out)
	}
	rootFile := d.maildropFiles(t)
	if len(rootFile) != 1 {
		t.Fatalf("maildrop: %v", rootFile)
	}
	// The user's own submission.
	if out, err := asUser(d.sendmailCmd(t, "Subject: user's\n\nfrom the user\n", "dave@localhost")).CombinedOutput(); err != nil {
		t.Fatalf("sendmail as %s: %v %s", name, err, out)
	}
	var userFile string
	for _, f := range d.maildropFiles(t) {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(md, f), &st); err == nil && int(st.Uid) == uid {
			userFile = f
		}
	}
	if userFile == "" {
		t.Fatalf("no maildrop file owned by uid %d", uid)
	}

	sh := func(script string) error {
		return asUser(exec.Command("sh", "-c", script)).Run()
	}
	for what, script := range map[string]string{
		"list the maildrop":        "ls " + md,
		"read root's file":         "cat " + filepath.Join(md, rootFile[0]),
		"remove root's file":       "rm -f " + filepath.Join(md, rootFile[0]) + " && test ! -e " + filepath.Join(md, rootFile[0]),
		"remove its own file":      "rm -f " + filepath.Join(md, userFile) + " && test ! -e " + filepath.Join(md, userFile),
		"write into the maildrop":  "echo forged > " + filepath.Join(md, "forged"),
		"run postdrop with uid 0":  fmt.Sprintf(`printf 'sqlmta-maildrop 1\nU 0\nS "root"\nR "carol@localhost"\n\nforged\n' | %s -c %s`, pd, d.dir),
		"use its own main.cf":      fmt.Sprintf(`mkdir -p /tmp/%s-cf && printf 'queue_directory = /tmp\n' > /tmp/%[1]s-cf/main.cf && printf 'sqlmta-maildrop 1\nS "x"\nR "y"\n\n' | %s -c /tmp/%[1]s-cf`, name, pd),
		"read the trigger as well": "cat " + filepath.Join(q, "public", "pickup"),
	} {
		if err := sh(script); err == nil {
			t.Errorf("%s could %s", name, what)
		}
	}
	os.RemoveAll("/tmp/" + name + "-cf")
	if n := len(d.maildropFiles(t)); n != 2 {
		t.Errorf("maildrop holds %d files, want 2", n)
	}

	// A file placed by other means (here root) whose envelope claims uid 0
	// but which the user owns: pickup believes the owner.
	forged := filepath.Join(md, "forged0")
	write(t, forged, "sqlmta-maildrop 1\nU 0\nT 1700000000\nS \"mallory\"\nR \"erin@localhost\"\n\nSubject: forged\n\nclaims root\n")
	os.Chown(forged, uid, ugid)
	os.Chmod(forged, 0o700)

	d.start()
	// pickup's trace header names the file owner, as Postfix's does.
	for rcpt, want := range map[string]string{
		"carol": "secret of root", "dave": "from the user", "erin": "claims root",
	} {
		got := d.waitMail(t, rcpt, want)
		uidWant := uid
		if rcpt == "carol" {
			uidWant = 0
		}
		trace := regexp.MustCompile(fmt.Sprintf(`(?m)^Received: by \S+ \(Postfix, from userid %d\)\r?\n\tid [0-9A-F]+; \w{3}, `, uidWant))
		if !trace.MatchString(got) {
			t.Errorf("%s: no Received header naming uid %d:\n%s", rcpt, uidWant, got)
		}
	}
	d.waitLog(t,
		`postfix/pickup\[\d+\]: [0-9A-F]+: uid=0 from=<root>`,
		fmt.Sprintf(`postfix/pickup\[\d+\]: [0-9A-F]+: uid=%d from=<%s>`, uid, name),
		fmt.Sprintf(`postfix/pickup\[\d+\]: warning: maildrop/forged0: file owner uid=%d, envelope claims uid=0: using the owner`, uid),
		fmt.Sprintf(`postfix/pickup\[\d+\]: [0-9A-F]+: uid=%d from=<mallory>`, uid))
	if strings.Contains(d.maillog(), "uid=0 from=<mallory>") {
		t.Errorf("the forged uid was believed:\n%s", d.maillog())
	}
}
