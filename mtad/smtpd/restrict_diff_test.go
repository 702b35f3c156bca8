package smtpd

import (
	"context"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sqlmta/config"
	"sqlmta/internal/peers"
	"sqlmta/mtad/matchlist"
)

// converse sends each command on a fresh connection to addr and returns the
// one-line replies (after the greeting and a HELO).
func converse(t *testing.T, addr string, cmds []string) []string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	tp := textproto.NewConn(conn)
	if _, err := tp.ReadLine(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cmds {
		if err := tp.PrintfLine("%s", c); err != nil {
			t.Fatal(err)
		}
		l, err := tp.ReadLine()
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		out = append(out, l)
	}
	return out
}

// peerMapsDir makes a directory for tables that the Postfix peer (user
// postfix) can read too.
func peerMapsDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "maps")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(dir), 0o755)
	return dir
}

// TestDifferentialAccessMaps runs the same dialogue against a real Postfix
// 3.7 with the same main.cf lines and texthash table, and against smtpd.
func TestDifferentialAccessMaps(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	dir := peerMapsDir(t)
	access := filepath.Join(dir, "access")
	content := strings.Join([]string{
		"example.com REJECT no spam",
		"vip@example.com DUNNO",
		"joe+spam@example.net 550 5.1.1 bounced ext",
		"joe@example.net DEFER 4.2.0 later",
		"ann@ 451 4.3.0 local part",
		"<> 550 5.1.1 no bounces",
		"dip.test DEFER_IF_PERMIT maybe",
		"c.test REJECT helo",
		"hold.test HOLD",
		"ok.test OK",
	}, "\n") + "\n"
	if err := os.WriteFile(access, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	lists := map[string]string{
		"smtpd_helo_restrictions":      "check_helo_access texthash:" + access,
		"smtpd_sender_restrictions":    "check_sender_access texthash:" + access + ", reject_non_fqdn_sender",
		"smtpd_relay_restrictions":     "reject_unauth_destination",
		"smtpd_recipient_restrictions": "check_recipient_access texthash:" + access,
		"recipient_delimiter":          "+",
		"mynetworks":                   "10.0.0.0/8",
	}
	var extra strings.Builder
	for k, v := range lists {
		extra.WriteString(k + " = " + v + "\n")
	}
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: "[127.0.0.1]:9", ExtraMainCf: extra.String()})

	ts := start(t, func(c *Config) {
		untrusted(c)
		c.OpenMap = fileMaps(nil)
		c.RecipientDelimiter = "+"
		c.HeloRestrictions = []string{"check_helo_access", "texthash:" + access}
		c.SenderRestrictions = []string{"check_sender_access", "texthash:" + access, "reject_non_fqdn_sender"}
		c.RecipientRestrictions = []string{"check_recipient_access", "texthash:" + access}
	})
	dialogues := [][]string{
		{"HELO x.test", "MAIL FROM:<a@sub.example.com>", "RCPT TO:<r@remote.example>"},
		{"HELO x.test", "MAIL FROM:<vip@example.com>", "RCPT TO:<r@remote.example>"},
		{"HELO x.test", "MAIL FROM:<joe+spam@example.net>", "RCPT TO:<r@remote.example>"},
		{"HELO x.test", "MAIL FROM:<joe+x@example.net>", "RCPT TO:<r@remote.example>"},
		{"HELO x.test", "MAIL FROM:<ann@other.test>", "RCPT TO:<r@remote.example>"},
		{"HELO x.test", "MAIL FROM:<>", "RCPT TO:<r@remote.example>"},
		{"HELO x.test", "MAIL FROM:<a@dip.test>", "RCPT TO:<r@remote.example>"},
		{"HELO x.test", "MAIL FROM:<a@ok.test>", "RCPT TO:<ok@ok.test>"},
		{"HELO x.test", "MAIL FROM:<a@b>", "RCPT TO:<r@remote.example>"},
		{"HELO host.c.test", "MAIL FROM:<a@ok.test>", "RCPT TO:<r@remote.example>"},
		{"HELO hold.test", "MAIL FROM:<a@ok.test>", "RCPT TO:<joe+spam@example.net>"},
		// A control character passes the syntax check and shows as a space.
		{"HELO x.test", "MAIL FROM:<a@ok.test>", "RCPT TO:<x\x01y@remote.example>"},
	}
	for _, d := range dialogues {
		want := converse(t, pf.Addr(), d)
		got := converse(t, ts.addr, d)
		// Only the restriction replies are compared: HELO names the host.
		if want[1] != got[1] || want[2] != got[2] {
			t.Errorf("%q:\npostfix: %q\nsmtpd:   %q", d, want[1:], got[1:])
		}
	}
}

// TestDifferentialEtrnRestrictions: smtpd_etrn_restrictions with
// check_etrn_access (parent domains included), a bare table, defer_if_permit
// and the final reject, against a real Postfix 3.7.
func TestDifferentialEtrnRestrictions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	dir := peerMapsDir(t)
	access := filepath.Join(dir, "etrn")
	if err := os.WriteFile(access, []byte("ok.test OK\nblocked.test REJECT go away\nsoft.test 450 try later\nmaybe.test DEFER_IF_PERMIT not sure\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	flushable := "ok.test, blocked.test, soft.test, maybe.test, other.test, sub.ok.test"
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: "[127.0.0.1]:9", ExtraMainCf: strings.Join([]string{
		"mynetworks = 10.0.0.0/8",
		"relay_domains = " + flushable,
		"smtpd_etrn_restrictions = check_etrn_access texthash:" + access + ", permit_mynetworks, permit",
	}, "\n") + "\n"})
	domains, err := matchlist.ParseDomainsTables(context.Background(), strings.Split(flushable, ", "), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, func(c *Config) {
		untrusted(c)
		c.OpenMap = fileMaps(nil)
		c.EtrnRestrictions = []string{"check_etrn_access", "texthash:" + access, "permit_mynetworks", "permit"}
		c.Etrn = func(ctx context.Context, domain string) (bool, error) { return domains.Match(ctx, domain) }
	})
	for _, d := range []string{"ok.test", "blocked.test", "sub.blocked.test", "soft.test", "maybe.test", "other.test", "nowhere.test"} {
		cmds := []string{"HELO x.test", "ETRN " + d}
		want := converse(t, pf.Addr(), cmds)
		got := converse(t, ts.addr, cmds)
		if want[len(want)-1] != got[len(got)-1] {
			t.Errorf("ETRN %s:\npostfix: %q\nsmtpd:   %q", d, want[len(want)-1], got[len(got)-1])
		}
	}
}

// TestDifferentialPolicyService: check_policy_service against a real
// policy server (postgrey, greylisting everything new) and against a
// server that is not there, with a real Postfix 3.7 asking the same
// postgrey the same questions.
func TestDifferentialPolicyService(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Postfix and postgrey")
	}
	grey := peers.StartPostgrey(t, time.Hour)
	down := peers.FreePort(t)
	// A policy server inside an access table goes through a restriction
	// class: a table value with ':' is refused.
	downClass := "check_policy_service inet:127.0.0.1:" + fmt.Sprint(down)
	rcptList := "check_recipient_access inline:{ {down@local.test=downpolicy} }, check_policy_service inet:" + grey.Addr() + ", permit"
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: "[127.0.0.1]:9", ExtraMainCf: strings.Join([]string{
		"mynetworks = 10.0.0.0/8",
		"relay_domains = local.test",
		"smtpd_restriction_classes = downpolicy",
		"downpolicy = " + downClass,
		"smtpd_relay_restrictions = reject_unauth_destination",
		"smtpd_recipient_restrictions = " + rcptList,
	}, "\n") + "\n"})
	ts := start(t, func(c *Config) {
		untrusted(c)
		c.OpenMap = fileMaps(nil)
		c.RecipientRestrictions = config.SplitList(rcptList)
		c.RestrictionClasses = map[string][]string{"downpolicy": config.SplitList(downClass)}
	})
	for _, d := range [][]string{
		{"HELO x.test", "MAIL FROM:<a@sender.example>", "RCPT TO:<r@local.test>"},
		{"HELO x.test", "MAIL FROM:<b@sender.example>", "RCPT TO:<postmaster@local.test>"},
		{"HELO x.test", "MAIL FROM:<a@sender.example>", "RCPT TO:<down@local.test>"},
		{"HELO x.test", "MAIL FROM:<a@sender.example>", "RCPT TO:<r@remote.example>"},
	} {
		want := converse(t, pf.Addr(), d)
		got := converse(t, ts.addr, d)
		if want[2] != got[2] {
			t.Errorf("%q:\npostfix: %q\nsmtpd:   %q", d, want[2], got[2])
		}
	}
	if !strings.Contains(ts.log.String(), fmt.Sprintf("warning: connect to 127.0.0.1:%d: Connection refused", down)) ||
		strings.Count(ts.log.String(), fmt.Sprintf("warning: problem talking to server 127.0.0.1:%d: Connection refused", down)) != 2 {
		t.Errorf("no warning about the missing server:\n%s", ts.log.String())
	}
}
