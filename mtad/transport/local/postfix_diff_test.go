package local

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	mapopen "sqlmta/mapdrivers/open"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/transport"
	"sqlmta/mtad/transport/mailbox"
)

// diffMessage has what the mbox format must handle: a body line starting
// with "From ", one already quoted, a leading dot.
const diffMessage = "From: Sender <sender@example.org>\r\nTo: list@localhost\r\nSubject: mbox format\r\n" +
	"Date: Tue, 5 Mar 2024 10:21:14 +0000\r\nMessage-ID: <diff.1@example.org>\r\n\r\n" +
	"From the first line\r\n>From quoted\r\n.leading dot\r\n\r\nlast line\r\n"

// TestMatchesPostfixLocal delivers one message through an alias to a
// mailbox in the spool, a /file and a |command, once with Postfix's local(8)
// and once with this package, and compares the files byte for byte (after
// Postfix's Received: header and the "From " line dates) and the log texts.
func TestMatchesPostfixLocal(t *testing.T) {
	peers.Require(t, "postalias")
	base, err := os.MkdirTemp("/tmp", "sqlmta-local-diff")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	for _, d := range []string{"pf/spool", "pf/out", "our/spool", "our/out"} {
		p := filepath.Join(base, d)
		os.MkdirAll(p, 0o755)
		// Commands and files run as default_privs (nobody); the spool
		// is sticky and world-writable as mail spools are.
		os.Chmod(p, 0o1777)
		os.Chmod(filepath.Dir(p), 0o755)
	}
	aliasLine := func(side string) string {
		out := filepath.Join(base, side, "out")
		return fmt.Sprintf(`nobody, %s/file.mbox, "|/bin/sh -c 'cat > %s/cmd.out'"`, out, out)
	}
	pfAliases := filepath.Join(base, "pf", "aliases")
	write(t, pfAliases, "list: "+aliasLine("pf")+"\n")
	if out, err := exec.Command("postalias", pfAliases).CombinedOutput(); err != nil {
		t.Fatalf("postalias: %v %s", err, out)
	}
	pf := peers.StartPostfix(t, peers.PostfixOptions{
		Relayhost: "[127.0.0.1]:9",
		ExtraMainCf: strings.Join([]string{
			"mydestination = localhost, $myhostname",
			"mail_spool_directory = " + filepath.Join(base, "pf", "spool"),
			"alias_maps = hash:" + pfAliases,
			"alias_database = hash:" + pfAliases,
			"local_recipient_maps =",
		}, "\n"),
	})
	if err := smtp.SendMail(pf.Addr(), nil, "sender@example.org", []string{"list@localhost"}, []byte(diffMessage)); err != nil {
		t.Fatalf("send to postfix: %v", err)
	}
	sentLines := regexp.MustCompile(`postfix/local\[\d+\]: \w+: (to=<[^>]*>(?:, orig_to=<[^>]*>)?), relay=local, .*dsn=(\S+), status=(\w+ \(.*\))`)
	peers.WaitFor(t, 60*time.Second, func() bool { return len(sentLines.FindAllString(pf.Maillog(), -1)) >= 3 }, "three local deliveries by postfix")

	// The same through this package, with Postfix's names for things.
	ourAliases := filepath.Join(base, "our", "aliases")
	write(t, ourAliases, "list "+aliasLine("our")+"\n")
	maps := &mapopen.Opener{}
	t.Cleanup(func() { maps.Close() })
	var log bytes.Buffer
	locks, _ := mailbox.ParseLocks("fcntl, dotlock")
	tr := New(Config{
		AliasMaps:           []string{"texthash:" + ourAliases},
		OpenMap:             maps.Open,
		AllowMailToCommands: []string{"alias", "forward"},
		AllowMailToFiles:    []string{"alias", "forward"},
		PrependDelivered:    []string{"command", "file", "forward"},
		DefaultPrivs:        "nobody",
		CommandTimeLimit:    time.Minute,
		MailSpoolDirectory:  filepath.Join(base, "our", "spool"),
		MailboxLocks:        locks,
		Qualify:             func(a string) string { return a + "@postfix-peer.localdomain" },
		IsLocal:             func(string) bool { return true },
		Log:                 maillog.New(&log, "mx", "postfix"),
	})
	d := &transport.Delivery{QueueID: "4ABC", Sender: "sender@example.org", Arrival: time.Now(),
		Recipients: []transport.Recipient{{ID: 1, Address: "list@localhost"}},
		Open: func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader(diffMessage)), nil
		}}
	if r := tr.Deliver(context.Background(), d)[0]; r.Status != transport.Sent {
		t.Fatalf("our delivery: %+v", r)
	}

	received := regexp.MustCompile(`(?m)^Received: .*\n(?:[ \t].*\n)*`)
	norm := func(s string) string {
		s = fromLine.ReplaceAllString(s, "From $1  DATE")
		return received.ReplaceAllString(s, "")
	}
	for _, f := range []string{"spool/nobody", "out/file.mbox", "out/cmd.out"} {
		want := norm(read(t, filepath.Join(base, "pf", f)))
		got := norm(read(t, filepath.Join(base, "our", f)))
		if got != want {
			t.Errorf("%s differs from Postfix's\n got: %q\nwant: %q", f, got, want)
		}
	}
	texts := func(s, side string) []string {
		var out []string
		for _, m := range sentLines.FindAllStringSubmatch(s, -1) {
			out = append(out, strings.ReplaceAll(m[1]+" "+m[2]+" "+m[3], filepath.Join(base, side), "BASE"))
		}
		slices.Sort(out)
		return out
	}
	if got, want := texts(log.String(), "our"), texts(pf.Maillog(), "pf"); !slices.Equal(got, want) {
		t.Errorf("log lines differ\n got: %q\nwant: %q", got, want)
	}
}
