package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
)

// publicDir is a directory that commands and files delivered as
// default_privs (nobody) can reach.
func publicDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "sqlmta-local")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	return dir
}

// TestLocalAliasFileAndCommand sends mail over SMTP to an alias whose
// expansion is a /file and a |command, through the SQL queue and the local
// delivery agent.
func TestLocalAliasFileAndCommand(t *testing.T) {
	databases(t, func(t *testing.T, url string) {
		out := publicDir(t)
		aliases := filepath.Join(out, "aliases")
		write(t, aliases, fmt.Sprintf("list %s/list.mbox, \"|cat > %s/cmd.out\"\n", out, out))
		d := startDaemon(t, url, "mydestination = local.test", "alias_maps = texthash:"+aliases)
		body := "Subject: to the list\r\n\r\nFrom the body\r\n"
		if err := sendMail(d.addr, "bob@example.org", []string{"list@local.test"}, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		d.waitLog(t,
			`postfix/local\[\d+\]: [0-9A-F]+: to=<list@local\.test>, relay=local, delay=[\d.]+, delays=[\d./]+, dsn=2\.0\.0, status=sent \(delivered to file: `+out+`/list\.mbox\)`,
			`postfix/local\[\d+\]: [0-9A-F]+: to=<list@local\.test>, relay=local, .*status=sent \(delivered to command: cat > `+out+`/cmd\.out\)`,
		)
		mbox, err := os.ReadFile(filepath.Join(out, "list.mbox"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"From bob@example.org  ", "\nReturn-Path: <bob@example.org>\nX-Original-To: list@local.test\nDelivered-To: list@local.test\n",
			"\nSubject: to the list\n", "\n\n>From the body\n\n"} {
			if !strings.Contains(string(mbox), want) {
				t.Errorf("mbox lacks %q:\n%s", want, mbox)
			}
		}
		cmd, err := os.ReadFile(filepath.Join(out, "cmd.out"))
		if err != nil || !strings.Contains(string(cmd), "\nSubject: to the list\n") || !strings.HasSuffix(string(cmd), "\n\nFrom the body\n") {
			t.Errorf("command input %q %v", cmd, err)
		}
	})
}

// TestVirtualMailboxFromManagedTable imports virtual_mailbox_maps into a
// managed hash: table with mtactl and delivers to the path it gives.
func TestVirtualMailboxFromManagedTable(t *testing.T) {
	mtactl := filepath.Join(t.TempDir(), "mtactl")
	if out, err := exec.Command("go", "build", "-o", mtactl, "../mtactl").CombinedOutput(); err != nil {
		t.Fatalf("build mtactl: %v\n%s", err, out)
	}
	databases(t, func(t *testing.T, url string) {
		src := filepath.Join(t.TempDir(), "vmailbox")
		write(t, src, "ann@hosted.test hosted.test/ann/\nben@hosted.test hosted.test/ben\n")
		d := startDaemon(t, url,
			"virtual_mailbox_domains = hosted.test",
			"virtual_mailbox_maps = hash:"+src,
			fmt.Sprintf("virtual_uid_maps = static:%d", os.Getuid()),
			fmt.Sprintf("virtual_gid_maps = static:%d", os.Getgid()),
			"virtual_minimum_uid = 0")
		if out, err := exec.Command(mtactl, "-c", d.dir, "map", "import", "hash:"+src).CombinedOutput(); err != nil {
			t.Fatalf("map import: %v\n%s", err, out)
		}
		if err := sendMail(d.addr, "x@example.org", []string{"ann@hosted.test", "ben@hosted.test"}, strings.NewReader("Subject: v\r\n\r\nhi\r\n")); err != nil {
			t.Fatal(err)
		}
		d.waitLog(t,
			`postfix/virtual\[\d+\]: [0-9A-F]+: to=<ann@hosted\.test>, relay=virtual, .*status=sent \(delivered to maildir\)`,
			`postfix/virtual\[\d+\]: [0-9A-F]+: to=<ben@hosted\.test>, relay=virtual, .*status=sent \(delivered to mailbox\)`,
		)
		base := filepath.Join(d.dir, "mail", "hosted.test")
		var files []string
		peers.WaitFor(t, 10*time.Second, func() bool {
			files, _ = filepath.Glob(filepath.Join(base, "ann", "new", "*"))
			return len(files) == 1
		}, "ann's message")
		if b, err := os.ReadFile(filepath.Join(base, "ben")); err != nil || !strings.HasPrefix(string(b), "From x@example.org  ") {
			t.Errorf("ben's mbox %q %v", b, err)
		}
	})
}
