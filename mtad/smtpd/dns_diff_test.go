package smtpd

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/internal/testdns"
	"sqlmta/mtad/dnsq"
	"sqlmta/mtad/matchlist"
)

// converseFrom sends each command from the loopback address src and
// returns the replies that follow the greeting.
func converseFrom(t *testing.T, src, addr string, cmds []string) []string {
	t.Helper()
	c := dialSrc(t, src, addr)
	defer c.conn.Close()
	c.conn.SetDeadline(time.Now().Add(60 * time.Second))
	var out []string
	for i := -1; i < len(cmds); i++ {
		if i >= 0 {
			c.send(cmds[i])
		}
		l, err := c.tp.ReadLine()
		if err != nil {
			t.Fatalf("after %q: %v", cmds[:i+1], err)
		}
		if i >= 0 {
			out = append(out, l)
		}
	}
	return out
}

// startDNSOn53 runs the test DNS server on port 53 of a random loopback
// address, because a resolv.conf cannot name a port.
func startDNSOn53(t *testing.T) *testdns.Server {
	t.Helper()
	for try := 0; try < 10; try++ {
		ip := fmt.Sprintf("127.53.%d.%d", 1+rand.IntN(250), 1+rand.IntN(250))
		pc, err := net.ListenPacket("udp", ip+":53")
		if err != nil {
			continue
		}
		pc.Close()
		return testdns.StartOn(t, ip+":53")
	}
	t.Skip("cannot bind a loopback address on port 53")
	return nil
}

func peerPostfix(t *testing.T) string {
	return peers.Require(t, "postfix")
}

// TestDifferentialDNS runs DNSBL, RHSBL, unknown-domain, client-name and
// MX-access dialogues against a real Postfix 3.7 and against smtpd, both
// resolving through the same test DNS server.
func TestDifferentialDNS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	peerPostfix(t)
	if os.Geteuid() != 0 {
		t.Skip("binding port 53 and a private Postfix need root")
	}
	z := startDNSOn53(t)
	z.Add(t,
		// Clients: 127.0.0.1, .2, .4 and .5 have verified names; .6 has
		// no PTR; .7's name does not resolve back.
		"1.0.0.127.in-addr.arpa. PTR c1.client.test.", "c1.client.test. A 127.0.0.1",
		"2.0.0.127.in-addr.arpa. PTR c2.client.test.", "c2.client.test. A 127.0.0.2",
		"4.0.0.127.in-addr.arpa. PTR c4.client.test.", "c4.client.test. A 127.0.0.4",
		"5.0.0.127.in-addr.arpa. PTR c5.client.test.", "c5.client.test. A 127.0.0.5",
		"7.0.0.127.in-addr.arpa. PTR c7.client.test.", "c7.client.test. A 192.0.2.7",
		// DNSBLs.
		"2.0.0.127.zen.test. A 127.0.0.2", `2.0.0.127.zen.test. TXT "Listed by zen, see http://zen.test/q?ip=127.0.0.2"`,
		"4.0.0.127.zen.test. A 127.0.0.4",
		"5.0.0.127.zen2.test. A 127.0.0.3", `5.0.0.127.zen2.test. TXT "zen2 says no"`,
		"8.0.0.127.in-addr.arpa. PTR c8.client.test.", "c8.client.test. A 127.0.0.8",
		"8.0.0.127.zen3.test. A 127.0.0.2", `8.0.0.127.zen3.test. TXT "zen3: go away"`,
		"spam.test.dbl.test. A 127.0.1.2", `spam.test.dbl.test. TXT "spam domain"`,
		"other.test.dbl.test. A 127.0.1.9",
		// Domains.
		"good.test. MX 10 mx.good.test.", "mx.good.test. A 192.0.2.10",
		"ok.test. A 192.0.2.11",
		"spam.test. A 192.0.2.12", "other.test. A 192.0.2.13",
		"nullmx.test. MX 0 .",
		"x.test. MX 10 mx.bad.test.", "mx.bad.test. A 192.0.2.66",
		// permit_mx_backup: we (127.0.0.1) are backup.test's second MX.
		"9.0.0.127.in-addr.arpa. PTR c9.client.test.", "c9.client.test. A 127.0.0.9",
		"backup.test. MX 10 primary.other.test.", "backup.test. MX 20 me.test.",
		"primary.test. MX 10 me.test.", "primary.test. MX 20 primary.other.test.",
		"me.test. A 127.0.0.1", "primary.other.test. A 192.0.2.20",
	)
	z.ServFail("broken.test")

	dir := filepath.Join(t.TempDir(), "maps")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(dir), 0o755)
	access := filepath.Join(dir, "access")
	rblReply := filepath.Join(dir, "rbl_reply")
	os.WriteFile(access, []byte("mx.bad.test REJECT bad mx host\n"), 0o644)
	// zen2.test's entry does not apply to "zen2.test=pattern" in 3.7.
	os.WriteFile(rblReply, []byte("zen2.test $rbl_code 5.7.9 $client_address listed by $rbl_domain ($rbl_txt) for $rbl_what\n"+
		"zen3.test 550 $rbl_class $client_name listed by $rbl_domain: ${rbl_reason?{$rbl_reason}:{no reason}} (helo $helo_name)\n"), 0o644)

	client := []string{"reject_rbl_client", "zen.test", "reject_rbl_client", "zen2.test=127.0.0.[2..3]", "reject_rbl_client", "zen3.test",
		"reject_unknown_reverse_client_hostname", "reject_unknown_client_hostname"}
	helo := []string{"reject_rhsbl_helo", "dbl.test", "reject_unknown_helo_hostname"}
	sender := []string{"reject_rhsbl_sender", "dbl.test=127.0.1.2", "reject_unknown_sender_domain", "check_sender_mx_access", "texthash:" + access}
	relay := []string{"reject_unknown_recipient_domain", "reject_rhsbl_recipient", "dbl.test", "permit_mx_backup", "permit_mynetworks", "reject_unauth_destination"}
	main := map[string]string{
		"smtpd_client_restrictions": strings.Join(client, " "),
		"smtpd_helo_restrictions":   strings.Join(helo, " "),
		"smtpd_sender_restrictions": strings.Join(sender, " "),
		"smtpd_relay_restrictions":  strings.Join(relay, " "),
		"rbl_reply_maps":            "texthash:" + rblReply,
		"mynetworks":                "127.0.0.0/29", // 127.0.0.9 is an outsider
	}
	var extra strings.Builder
	for k, v := range main {
		extra.WriteString(k + " = " + v + "\n")
	}
	ns, _, _ := net.SplitHostPort(z.Addr())
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: "[127.0.0.1]:9", ExtraMainCf: extra.String(), Nameserver: ns})

	r, err := dnsq.New(dnsq.Config{Servers: []string{z.Addr()}, Timeout: 2 * time.Second, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, func(c *Config) {
		c.MyNetworks, _ = matchlist.ParseNetworks([]string{"127.0.0.0/29"})
		c.OpenMap = fileMaps(nil)
		c.DNS.Resolver = r
		c.DNS.RBLReplyMaps = []string{"texthash:" + rblReply}
		c.ClientRestrictions = client
		c.HeloRestrictions = helo
		c.SenderRestrictions = sender
		c.RelayRestrictions = relay
	})
	dialogues := []struct {
		src  string
		cmds []string
	}{
		{"127.0.0.1", []string{"HELO ok.test", "MAIL FROM:<a@good.test>", "RCPT TO:<r@good.test>"}},
		{"127.0.0.2", []string{"HELO ok.test", "MAIL FROM:<a@good.test>", "RCPT TO:<r@good.test>"}},
		{"127.0.0.4", []string{"HELO ok.test", "MAIL FROM:<a@good.test>", "RCPT TO:<r@good.test>"}},
		{"127.0.0.5", []string{"HELO ok.test", "MAIL FROM:<a@good.test>", "RCPT TO:<r@good.test>"}},
		{"127.0.0.8", []string{"HELO ok.test", "MAIL FROM:<a@good.test>", "RCPT TO:<r@good.test>"}},
		{"127.0.0.6", []string{"HELO ok.test", "MAIL FROM:<a@good.test>", "RCPT TO:<r@good.test>"}},
		{"127.0.0.7", []string{"HELO ok.test", "MAIL FROM:<a@good.test>", "RCPT TO:<r@good.test>"}},
		{"127.0.0.1", []string{"HELO spam.test", "MAIL FROM:<a@good.test>", "RCPT TO:<r@good.test>"}},
		{"127.0.0.1", []string{"HELO nohost.test", "MAIL FROM:<a@good.test>", "RCPT TO:<r@good.test>"}},
		{"127.0.0.1", []string{"HELO ok.test", "MAIL FROM:<a@spam.test>", "RCPT TO:<r@good.test>"}},
		{"127.0.0.1", []string{"HELO ok.test", "MAIL FROM:<a@other.test>", "RCPT TO:<r@good.test>"}},
		{"127.0.0.1", []string{"HELO ok.test", "MAIL FROM:<a@missing.test>", "RCPT TO:<r@good.test>"}},
		{"127.0.0.1", []string{"HELO ok.test", "MAIL FROM:<a@nullmx.test>", "RCPT TO:<r@good.test>"}},
		{"127.0.0.1", []string{"HELO ok.test", "MAIL FROM:<a@broken.test>", "RCPT TO:<r@good.test>"}},
		{"127.0.0.1", []string{"HELO ok.test", "MAIL FROM:<a@x.test>", "RCPT TO:<r@good.test>"}},
		{"127.0.0.1", []string{"HELO ok.test", "MAIL FROM:<a@good.test>", "RCPT TO:<r@missing.test>"}},
		{"127.0.0.1", []string{"HELO ok.test", "MAIL FROM:<a@good.test>", "RCPT TO:<r@nullmx.test>"}},
		{"127.0.0.1", []string{"HELO ok.test", "MAIL FROM:<a@good.test>", "RCPT TO:<r@spam.test>"}},
		{"127.0.0.1", []string{"HELO ok.test", "MAIL FROM:<>", "RCPT TO:<r@broken.test>"}},
		{"127.0.0.9", []string{"HELO ok.test", "MAIL FROM:<a@good.test>", "RCPT TO:<r@backup.test>"}},
		{"127.0.0.9", []string{"HELO ok.test", "MAIL FROM:<a@good.test>", "RCPT TO:<r@primary.test>"}},
		{"127.0.0.9", []string{"HELO ok.test", "MAIL FROM:<a@good.test>", "RCPT TO:<r@good.test>"}},
	}
	for _, d := range dialogues {
		want := converseFrom(t, d.src, pf.Addr(), d.cmds)
		got := converseFrom(t, d.src, ts.addr, d.cmds)
		t.Logf("%s %q: postfix %q", d.src, d.cmds, want[1:])
		// The HELO reply names the host; the rest must match exactly.
		if strings.Join(want[1:], "\n") != strings.Join(got[1:], "\n") {
			t.Errorf("%s %q:\npostfix: %q\nsmtpd:   %q", d.src, d.cmds, want[1:], got[1:])
		}
	}
}
