package smtpd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sqlmta/internal/peers"
	"sqlmta/mtad/matchlist"
	"sqlmta/mtad/rewrite"
)

// rcptTables writes the recipient tables the validation tests share and
// returns main.cf lines naming them.
func rcptTables(t *testing.T) map[string]string {
	dir := filepath.Join(t.TempDir(), "maps")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(dir), 0o755)
	write := func(name string, lines ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return "texthash:" + p
	}
	return map[string]string{
		"mydestination":            "local.test, mx.test",
		"myhostname":               "mx.test",
		"myorigin":                 "mx.test",
		"virtual_mailbox_domains":  "virt.test",
		"virtual_alias_domains":    "alias.test",
		"relay_domains":            "relay.test",
		"recipient_delimiter":      "+",
		"local_recipient_maps":     write("local", "alice x", "bob x"),
		"virtual_mailbox_maps":     write("vmbox", "carol@virt.test x"),
		"relay_recipient_maps":     write("relay", "dave@relay.test x") + ", fail:broken",
		"relocated_maps":           write("relocated", "moved@local.test new@elsewhere.example", "gone@virt.test call us"),
		"virtual_alias_maps":       write("valias", "alias@local.test alice", "v@virt.test carol@virt.test", "a@alias.test alice"),
		"canonical_maps":           write("canon", "canon@virt.test carol@virt.test"),
		"smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
	}
}

// withValidation configures smtpd the way the node does from the lines of
// rcptTables: a resolver with those domains and tables opened as files.
func withValidation(t *testing.T, lines map[string]string) func(*Config) {
	domains := func(name string) *matchlist.Domains {
		d, err := matchlist.ParseDomainsTables(context.Background(), strings.Split(lines[name], ", "), false, fileMaps(nil))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	own, err := rewrite.ParseOwnAddrs(context.Background(), []string{"all"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := &rewrite.Resolver{
		MyDestination: domains("mydestination"), VirtualMailboxDomains: domains("virtual_mailbox_domains"),
		VirtualAliasDomains: domains("virtual_alias_domains"),
		RelayDomains:        domains("relay_domains"), MyOrigin: lines["myorigin"], AppendAtMyorigin: true, Own: own,
	}
	open := fileMaps(nil)
	tables := func(param string) *rewrite.Tables {
		tb := &rewrite.Tables{Title: param}
		for _, spec := range strings.Split(lines[param], ", ") {
			m, err := open(context.Background(), spec)
			if err != nil {
				t.Fatal(err)
			}
			tb.Maps = append(tb.Maps, m)
		}
		return tb
	}
	rt := &rewrite.RecipientTables{
		Delimiter: "+", DoubleBounce: "double-bounce",
		Canonical: tables("canonical_maps"), VirtualAlias: tables("virtual_alias_maps"),
		LocalRecipient: tables("local_recipient_maps"), VirtualMailbox: tables("virtual_mailbox_maps"),
		RelayRecipient: tables("relay_recipient_maps"), Relocated: tables("relocated_maps"),
	}
	return func(c *Config) {
		c.AuthDestination = res.AuthDestination
		c.Qualify = res.Qualify
		c.OpenMap = open
		c.RejectUnlistedRecipient = true
		c.Validate = func(ctx context.Context, addr string, sender bool) (rewrite.Validity, error) {
			return res.Validate(ctx, rt, addr, sender)
		}
	}
}

var rcptDialogues = []struct{ from, to, want string }{
	{"a@example.org", "alice@local.test", "250 2.1.5 Ok"},
	{"a@example.org", "Alice+ext@LOCAL.test", "250 2.1.5 Ok"},
	{"a@example.org", "zed@local.test", "550 5.1.1 <zed@local.test>: Recipient address rejected: User unknown in local recipient table"},
	{"a@example.org", "zed", "550 5.1.1 <zed>: Recipient address rejected: User unknown in local recipient table"},
	{"a@example.org", "bob", "250 2.1.5 Ok"},
	{"a@example.org", "zed@[127.0.0.1]", "550 5.1.1 <zed@[127.0.0.1]>: Recipient address rejected: User unknown in local recipient table"},
	{"a@example.org", "alice@[127.0.0.1]", "250 2.1.5 Ok"},
	{"a@example.org", "double-bounce@mx.test", "250 2.1.5 Ok"},
	{"a@example.org", "carol@virt.test", "250 2.1.5 Ok"},
	{"a@example.org", "x@virt.test", "550 5.1.1 <x@virt.test>: Recipient address rejected: User unknown in virtual mailbox table"},
	{"a@example.org", "dave@relay.test", "250 2.1.5 Ok"},
	{"a@example.org", "x@relay.test", "451 4.3.0 <x@relay.test>: Temporary lookup failure"},
	{"a@example.org", "moved@local.test", "550 5.1.6 <moved@local.test>: Recipient address rejected: User has moved to new@elsewhere.example"},
	{"a@example.org", "gone@virt.test", "550 5.1.6 <gone@virt.test>: Recipient address rejected: User has moved to call us"},
	{"a@example.org", "alias@local.test", "250 2.1.5 Ok"},
	{"a@example.org", "v@virt.test", "250 2.1.5 Ok"},
	{"a@example.org", "canon@virt.test", "250 2.1.5 Ok"},
	{"a@example.org", "someone@remote.example", "250 2.1.5 Ok"},
	{"a@example.org", "postmaster", "250 2.1.5 Ok"},
	{"a@example.org", "a@alias.test", "250 2.1.5 Ok"},
	{"a@example.org", "nobody@alias.test", "550 5.1.1 <nobody@alias.test>: Recipient address rejected: User unknown in virtual alias table"},
}

// TestUnlistedRecipients runs the recipient tables of every class through
// RCPT, from a client in mynetworks (validation applies to it too).
func TestUnlistedRecipients(t *testing.T) {
	lines := rcptTables(t)
	ts := start(t, withValidation(t, lines))
	for _, d := range rcptDialogues {
		c := ts.dial(t)
		c.expect("220 mx.test ESMTP Postfix")
		c.ehlo("client.example", "SIZE 10240000")
		c.cmd("MAIL FROM:<"+d.from+">", "250 2.1.0 Ok")
		c.cmd("RCPT TO:<"+d.to+">", d.want)
	}
	ts.log.wait(t, "NOQUEUE: reject: RCPT from ")
	if !strings.Contains(ts.log.String(), "reject: RCPT from localhost[127.0.0.1]: 550 5.1.1 <zed@local.test>: Recipient address rejected: User unknown in local recipient table; from=<a@example.org> to=<zed@local.test> proto=ESMTP helo=<client.example>") &&
		!strings.Contains(ts.log.String(), "550 5.1.1 <zed@local.test>: Recipient address rejected: User unknown in local recipient table; from=<a@example.org> to=<zed@local.test> proto=ESMTP helo=<client.example>") {
		t.Errorf("log lacks the reject line:\n%s", ts.log.String())
	}
}

// TestUnlistedSenderAndSwitches covers reject_unlisted_sender (explicit and
// implied), smtpd_reject_unlisted_recipient = no and
// show_user_unknown_table_name = no.
func TestUnlistedSenderAndSwitches(t *testing.T) {
	lines := rcptTables(t)
	valid := withValidation(t, lines)
	ts := start(t, func(c *Config) {
		valid(c)
		c.SenderRestrictions = []string{"reject_unlisted_sender"}
	})
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.ehlo("client.example", "SIZE 10240000")
	c.cmd("MAIL FROM:<zed@local.test>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<alice@local.test>", "550 5.1.0 <zed@local.test>: Sender address rejected: User unknown in local recipient table")
	c.cmd("RSET", "250 2.0.0 Ok")
	c.cmd("MAIL FROM:<bob@local.test>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<alice@local.test>", "250 2.1.5 Ok")
	c.cmd("RSET", "250 2.0.0 Ok")
	c.cmd("MAIL FROM:<>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<alice@local.test>", "250 2.1.5 Ok")

	ts = start(t, func(c *Config) {
		valid(c)
		c.RejectUnlistedRecipient = false
		c.RejectUnlistedSender = true
		c.HideUnknownTable = true
		c.RecipientRestrictions = []string{"reject_unlisted_recipient"}
	})
	c = ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.ehlo("client.example", "SIZE 10240000")
	c.cmd("MAIL FROM:<zed@virt.test>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<alice@local.test>", "550 5.1.0 <zed@virt.test>: Sender address rejected: User unknown")
	c.cmd("RSET", "250 2.0.0 Ok")
	c.cmd("MAIL FROM:<carol@virt.test>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<zed@local.test>", "550 5.1.1 <zed@local.test>: Recipient address rejected: User unknown")

	ts = start(t, func(c *Config) {
		valid(c)
		c.RejectUnlistedRecipient = false
	})
	c = ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.ehlo("client.example", "SIZE 10240000")
	c.cmd("MAIL FROM:<a@example.org>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<zed@local.test>", "250 2.1.5 Ok")
}

// postfixWith starts a Postfix peer with lines added to its main.cf.
func postfixWith(t *testing.T, lines map[string]string) *peers.Postfix {
	var extra strings.Builder
	for k, v := range lines {
		extra.WriteString(k + " = " + v + "\n")
	}
	return peers.StartPostfix(t, peers.PostfixOptions{Relayhost: "[127.0.0.1]:9", ExtraMainCf: extra.String()})
}

// compareMailRcpt sends HELO, MAIL FROM:<from> and RCPT TO:<to> to Postfix
// and to smtpd and compares the MAIL and RCPT replies.
func compareMailRcpt(t *testing.T, postfix, ours, from, to string) {
	t.Helper()
	cmds := []string{"HELO client.example", "MAIL FROM:<" + from + ">", "RCPT TO:<" + to + ">"}
	want := converse(t, postfix, cmds)
	got := converse(t, ours, cmds)
	if want[1] != got[1] || want[2] != got[2] {
		t.Errorf("MAIL FROM:<%s> RCPT TO:<%s>:\npostfix: %q\nsmtpd:   %q", from, to, want[1:], got[1:])
	}
}

// TestDifferentialUnlistedRecipients gives a real Postfix 3.7 the same
// main.cf lines and tables and compares every RCPT reply.
func TestDifferentialUnlistedRecipients(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	lines := rcptTables(t)
	pf := postfixWith(t, lines)
	ts := start(t, withValidation(t, lines))
	for _, d := range rcptDialogues {
		compareMailRcpt(t, pf.Addr(), ts.addr, d.from, d.to)
	}
}

// TestDifferentialUnlistedSenders compares smtpd_reject_unlisted_sender = yes
// with Postfix: unknown senders of each class, the null sender, a listed one.
func TestDifferentialUnlistedSenders(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	lines := rcptTables(t)
	lines["smtpd_reject_unlisted_sender"] = "yes"
	pf := postfixWith(t, lines)
	valid := withValidation(t, lines)
	ts := start(t, func(c *Config) {
		valid(c)
		c.RejectUnlistedSender = true
	})
	for _, from := range []string{"zed@local.test", "bob@local.test", "x@virt.test", "moved@local.test", "x@relay.test", "", "zed", "a@example.org"} {
		compareMailRcpt(t, pf.Addr(), ts.addr, from, "alice@local.test")
	}
}

// TestDifferentialDomainTableFailure: a domain list whose table fails
// (relay_domains = relay.test, fail:down) answers RCPT with Postfix's 451
// for every address that reaches the table, and accepts the one before it.
func TestDifferentialDomainTableFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	lines := rcptTables(t)
	lines["relay_domains"] = "relay.test, fail:down"
	pf := postfixWith(t, lines)
	ts := start(t, withValidation(t, lines))
	for _, rcpt := range []string{"dave@relay.test", "someone@remote.example", "alice@local.test", "carol@virt.test"} {
		compareMailRcpt(t, pf.Addr(), ts.addr, "a@example.org", rcpt)
	}
}
