package smtpd

import (
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/testdns"
	"sqlmta/mtad/dnsq"
	"sqlmta/mtad/matchlist"
)

// dnsDialogue is one SMTP conversation with DNS from a test server. The
// client connects from src (a loopback address, default 127.0.0.2), so
// its PTR and DNSBL entries are the test's to set.
type dnsDialogue struct {
	name     string
	src      string
	zone     []string // records, zone-file style
	servfail []string // names answering SERVFAIL
	silent   []string // names never answered
	tables   map[string]string
	cf       func(c *Config, dir string)
	steps    []string
	logs     []string
}

func runDNSDialogues(t *testing.T, cases []dnsDialogue) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			z := testdns.Start(t)
			z.Add(t, tc.zone...)
			for _, n := range tc.servfail {
				z.ServFail(n)
			}
			for _, n := range tc.silent {
				z.Timeout(n)
			}
			dir := t.TempDir()
			for name, content := range tc.tables {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// No hosts file: every name the test uses comes from z.
			r, err := dnsq.New(dnsq.Config{Servers: []string{z.Addr()}, Timeout: 300 * time.Millisecond, Attempts: 1})
			if err != nil {
				t.Fatal(err)
			}
			ts := start(t, func(c *Config) {
				untrusted(c)
				c.OpenMap = fileMaps(nil)
				c.DNS.Resolver = r
				if tc.cf != nil {
					tc.cf(c, dir)
				}
			})
			src := tc.src
			if src == "" {
				src = "127.0.0.2"
			}
			c := ts.dialFrom(t, src)
			for _, step := range tc.steps {
				if cmd, ok := strings.CutPrefix(step, "C: "); ok {
					c.send(cmd)
					continue
				}
				c.expect(step)
			}
			for _, l := range tc.logs {
				ts.log.wait(t, l)
			}
		})
	}
}

// dialFrom connects from a given loopback source address.
func (ts *testServer) dialFrom(t *testing.T, src string) *rawClient {
	t.Helper()
	return dialSrc(t, src, ts.addr)
}

// dialSrc connects to addr from the loopback address src.
func dialSrc(t *testing.T, src, addr string) *rawClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, tp: textproto.NewConn(conn)}
}

// mail is a dialogue up to one RCPT reply.
func mail(helo, from, to, want string) []string {
	return []string{banner, "C: HELO " + helo, "250 mx.test",
		"C: MAIL FROM:<" + from + ">", "250 2.1.0 Ok",
		"C: RCPT TO:<" + to + ">", want}
}

func clientRestrictions(list ...string) func(c *Config, dir string) {
	return func(c *Config, dir string) { c.ClientRestrictions = list }
}

func TestClientNameLookup(t *testing.T) {
	fwd := []string{"2.0.0.127.in-addr.arpa. PTR host.client.test.", "host.client.test. A 127.0.0.2"}
	runDNSDialogues(t, []dnsDialogue{{
		name: "verified name",
		zone: fwd,
		cf:   clientRestrictions("reject_unknown_client_hostname", "reject_unknown_reverse_client_hostname"),
		// The name shows in the log and in check_client_access replies.
		steps: mail("c.test", "a@local.test", "b@local.test", "250 2.1.5 Ok"),
		logs:  []string{"connect from host.client.test[127.0.0.2]"},
	}, {
		name:  "no PTR",
		cf:    clientRestrictions("reject_unknown_client_hostname"),
		steps: mail("c.test", "a@local.test", "b@local.test", "450 4.7.25 Client host rejected: cannot find your hostname, [127.0.0.2]"),
		logs:  []string{"NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 450 4.7.25 Client host rejected: cannot find your hostname, [127.0.0.2]; from=<a@local.test> to=<b@local.test> proto=SMTP helo=<c.test>"},
	}, {
		name: "no PTR with unknown_client_reject_code 550",
		cf: func(c *Config, dir string) {
			c.Codes.UnknownClientReject = 550
			c.ClientRestrictions = []string{"reject_unknown_reverse_client_hostname"}
		},
		steps: mail("c.test", "a@local.test", "b@local.test", "550 5.7.1 Client host rejected: cannot find your reverse hostname, [127.0.0.2]"),
	}, {
		name: "forged name: the reverse name passes, the name does not",
		zone: []string{"2.0.0.127.in-addr.arpa. PTR host.client.test.", "host.client.test. A 192.0.2.1"},
		cf: func(c *Config, dir string) {
			c.Codes.UnknownClientReject = 550
			c.ClientRestrictions = []string{"reject_unknown_reverse_client_hostname", "reject_unknown_client_hostname"}
		},
		steps: mail("c.test", "a@local.test", "b@local.test", "550 5.7.25 Client host rejected: cannot find your hostname, [127.0.0.2]"),
		logs:  []string{"warning: hostname host.client.test does not resolve to address 127.0.0.2", "connect from unknown[127.0.0.2]"},
	}, {
		name:     "PTR lookup fails temporarily: 450 whatever the code",
		servfail: []string{"2.0.0.127.in-addr.arpa"},
		cf: func(c *Config, dir string) {
			c.Codes.UnknownClientReject = 550
			c.ClientRestrictions = []string{"reject_unknown_reverse_client_hostname"}
		},
		steps: mail("c.test", "a@local.test", "b@local.test", "450 4.7.1 Client host rejected: cannot find your reverse hostname, [127.0.0.2]"),
	}, {
		name:     "forward lookup fails temporarily",
		zone:     []string{"2.0.0.127.in-addr.arpa. PTR host.client.test."},
		servfail: []string{"host.client.test"},
		cf: func(c *Config, dir string) {
			c.Codes.UnknownClientReject = 550
			c.ClientRestrictions = []string{"reject_unknown_reverse_client_hostname", "reject_unknown_client"}
		},
		steps: mail("c.test", "a@local.test", "b@local.test", "450 4.7.25 Client host rejected: cannot find your hostname, [127.0.0.2]"),
		logs:  []string{"warning: hostname host.client.test does not resolve to address 127.0.0.2: Temporary failure in name resolution"},
	}, {
		name: "smtpd_peername_lookup = no",
		zone: fwd,
		cf: func(c *Config, dir string) {
			c.DNS.NoPeernameLookup = true
			c.Codes.UnknownClientReject = 550
			c.ClientRestrictions = []string{"reject_unknown_client_hostname"}
		},
		steps: mail("c.test", "a@local.test", "b@local.test", "550 5.7.25 Client host rejected: cannot find your hostname, [127.0.0.2]"),
		logs:  []string{"connect from unknown[127.0.0.2]"},
	}, {
		name:   "check_reverse_client_hostname_access sees the unverified name",
		zone:   []string{"2.0.0.127.in-addr.arpa. PTR host.client.test."},
		tables: map[string]string{"access": "client.test REJECT forged\n"},
		cf: func(c *Config, dir string) {
			c.ClientRestrictions = []string{"check_reverse_client_hostname_access", tbl(dir, "texthash", "access")}
		},
		steps: mail("c.test", "a@local.test", "b@local.test", "554 5.7.1 <host.client.test>: Unverified Client host rejected: forged"),
	}})
}

func TestUnknownHeloHostname(t *testing.T) {
	list := func(extra ...string) func(c *Config, dir string) {
		return func(c *Config, dir string) {
			c.HeloRestrictions = append([]string{"reject_unknown_helo_hostname"}, extra...)
		}
	}
	runDNSDialogues(t, []dnsDialogue{{
		name:  "A record",
		zone:  []string{"helo.test. A 192.0.2.1"},
		cf:    list(),
		steps: mail("helo.test", "a@local.test", "b@local.test", "250 2.1.5 Ok"),
	}, {
		name:  "MX only",
		zone:  []string{"helo.test. MX 10 mail.elsewhere.test."},
		cf:    list(),
		steps: mail("helo.test", "a@local.test", "b@local.test", "250 2.1.5 Ok"),
	}, {
		name:  "null MX counts as found",
		zone:  []string{"helo.test. MX 0 ."},
		cf:    list(),
		steps: mail("helo.test", "a@local.test", "b@local.test", "250 2.1.5 Ok"),
	}, {
		name:  "nothing",
		zone:  []string{"helo.test. TXT \"only text\""},
		cf:    list(),
		steps: mail("helo.test", "a@local.test", "b@local.test", "450 4.7.1 <helo.test>: Helo command rejected: Host not found"),
	}, {
		name: "nothing, unknown_hostname_reject_code 550",
		cf: func(c *Config, dir string) {
			c.Codes.UnknownHostnameReject = 550
			c.HeloRestrictions = []string{"reject_unknown_hostname"}
		},
		steps: mail("nxdomain.test", "a@local.test", "b@local.test", "550 5.7.1 <nxdomain.test>: Helo command rejected: Host not found"),
	}, {
		name:     "temporary failure defers only if the rest permits",
		servfail: []string{"broken.test"},
		cf:       list(),
		steps: append(mail("broken.test", "a@local.test", "b@local.test", "450 4.7.1 <broken.test>: Helo command rejected: Host not found"),
			"C: RCPT TO:<r@remote.test>", "554 5.7.1 <r@remote.test>: Relay access denied"),
	}, {
		name:     "temporary failure with unknown_helo_hostname_tempfail_action = defer",
		servfail: []string{"broken.test"},
		cf: func(c *Config, dir string) {
			c.DNS.UnknownHeloTempfailAction = "defer"
			c.HeloRestrictions = []string{"reject_unknown_helo_hostname"}
		},
		steps: append(mail("broken.test", "a@local.test", "b@local.test", "450 4.7.1 <broken.test>: Helo command rejected: Host not found"),
			"C: RCPT TO:<r@remote.test>", "450 4.7.1 <broken.test>: Helo command rejected: Host not found"),
	}, {
		name:   "a timeout is a temporary failure",
		silent: []string{"slow.test"},
		cf:     list(),
		steps:  mail("slow.test", "a@local.test", "b@local.test", "450 4.7.1 <slow.test>: Helo command rejected: Host not found"),
	}, {
		name:  "address literal is checked for syntax only",
		cf:    list(),
		steps: mail("[300.1.2.3]", "a@local.test", "b@local.test", "501 5.5.2 <[300.1.2.3]>: Helo command rejected: invalid ip address"),
	}})
}

func TestUnknownAddressDomain(t *testing.T) {
	zone := []string{"good.test. MX 10 mx.good.test.", "aonly.test. A 192.0.2.1", "nullmx.test. MX 0 .", "bad-mx.test. MX 10 -bad-.test."}
	sender := func(c *Config, dir string) {
		c.SenderRestrictions = []string{"reject_unknown_sender_domain"}
		finalLocal(c)
	}
	rcpt := func(c *Config, dir string) {
		trustClient(c)
		c.RecipientRestrictions = []string{"reject_unknown_recipient_domain"}
		finalLocal(c)
	}
	runDNSDialogues(t, []dnsDialogue{{
		name: "MX", zone: zone, cf: sender,
		steps: mail("c.test", "a@good.test", "b@local.test", "250 2.1.5 Ok"),
	}, {
		name: "A only", zone: zone, cf: sender,
		steps: mail("c.test", "a@aonly.test", "b@local.test", "250 2.1.5 Ok"),
	}, {
		name: "our own domain needs no DNS", zone: zone, cf: sender,
		steps: mail("c.test", "a@local.test", "b@local.test", "250 2.1.5 Ok"),
	}, {
		name: "sender domain not found", zone: zone, cf: sender,
		steps: mail("c.test", "a@missing.test", "b@local.test", "450 4.1.8 <a@missing.test>: Sender address rejected: Domain not found"),
		logs:  []string{"NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 450 4.1.8 <a@missing.test>: Sender address rejected: Domain not found; from=<a@missing.test> to=<b@local.test> proto=SMTP helo=<c.test>"},
	}, {
		name: "sender domain not found, unknown_address_reject_code 550", zone: zone,
		cf: func(c *Config, dir string) {
			sender(c, dir)
			c.Codes.UnknownAddressReject = 550
			c.SenderRestrictions = []string{"reject_unknown_address"}
		},
		steps: mail("c.test", "a@missing.test", "b@local.test", "550 5.1.8 <a@missing.test>: Sender address rejected: Domain not found"),
	}, {
		name: "sender null MX", zone: zone, cf: sender,
		steps: mail("c.test", "a@nullmx.test", "b@local.test", "550 5.7.27 <a@nullmx.test>: Sender address rejected: Domain nullmx.test does not accept mail (nullMX)"),
	}, {
		name: "malformed MX", zone: zone, cf: sender,
		steps: mail("c.test", "a@bad-mx.test", "b@local.test", "450 4.1.8 <a@bad-mx.test>: Sender address rejected: Malformed DNS server reply"),
	}, {
		name: "temporary failure", zone: zone, servfail: []string{"broken.test"}, cf: sender,
		steps: append(mail("c.test", "a@broken.test", "b@local.test", "450 4.1.8 <a@broken.test>: Sender address rejected: Domain not found"),
			"C: RCPT TO:<r@remote.test>", "554 5.7.1 <r@remote.test>: Relay access denied"),
	}, {
		name: "temporary failure, unknown_address_tempfail_action = defer", zone: zone, servfail: []string{"broken.test"},
		cf: func(c *Config, dir string) {
			sender(c, dir)
			c.DNS.UnknownAddressTempfailAction = "defer"
		},
		steps: append(mail("c.test", "a@broken.test", "b@local.test", "450 4.1.8 <a@broken.test>: Sender address rejected: Domain not found"),
			"C: RCPT TO:<r@remote.test>", "450 4.1.8 <a@broken.test>: Sender address rejected: Domain not found"),
	}, {
		name: "null sender is not checked", zone: zone, cf: sender,
		steps: mail("c.test", "", "b@local.test", "250 2.1.5 Ok"),
	}, {
		name: "recipient domain not found", zone: zone, cf: rcpt,
		steps: mail("c.test", "a@local.test", "r@missing.test", "450 4.1.2 <r@missing.test>: Recipient address rejected: Domain not found"),
	}, {
		name: "recipient null MX", zone: zone, cf: rcpt,
		steps: mail("c.test", "a@local.test", "r@nullmx.test", "556 5.1.10 <r@nullmx.test>: Recipient address rejected: Domain nullmx.test does not accept mail (nullMX)"),
	}, {
		name: "recipient domain with MX", zone: zone, cf: rcpt,
		steps: mail("c.test", "a@local.test", "r@good.test", "250 2.1.5 Ok"),
	}, {
		name: "recipient address literal is skipped", zone: zone, cf: rcpt,
		steps: mail("c.test", "a@local.test", "r@[192.0.2.1]", "250 2.1.5 Ok"),
	}})
}

// trustClient lets the loopback client relay, so that only the recipient
// restrictions decide about remote recipients.
func trustClient(c *Config) {
	c.MyNetworks, _ = matchlist.ParseNetworks([]string{"127.0.0.0/8"})
	c.RelayRestrictions = []string{"permit_mynetworks", "reject_unauth_destination"}
}

// finalLocal makes local.test (the tests' local domain) a final
// destination, as node does from mydestination.
func finalLocal(c *Config) {
	c.DNS.FinalDestination = func(d string) bool { return d == "local.test" }
}

func TestDNSBL(t *testing.T) {
	listed := []string{"2.0.0.127.zen.test. A 127.0.0.2", `2.0.0.127.zen.test. TXT "Listed; see http://zen.test/?127.0.0.2"`}
	runDNSDialogues(t, []dnsDialogue{{
		name:  "listed, with TXT",
		zone:  listed,
		cf:    clientRestrictions("reject_rbl_client", "zen.test"),
		steps: mail("c.test", "a@local.test", "b@local.test", "554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using zen.test; Listed; see http://zen.test/?127.0.0.2"),
		logs:  []string{"NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using zen.test; Listed; see http://zen.test/?127.0.0.2; from=<a@local.test> to=<b@local.test> proto=SMTP helo=<c.test>"},
	}, {
		name:  "listed, no TXT, old name",
		zone:  []string{"2.0.0.127.zen.test. A 127.0.0.4"},
		cf:    clientRestrictions("reject_rbl", "zen.test"),
		steps: mail("c.test", "a@local.test", "b@local.test", "554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using zen.test"),
	}, {
		name:  "not listed",
		zone:  listed,
		src:   "127.0.0.3",
		cf:    clientRestrictions("reject_rbl_client", "zen.test"),
		steps: mail("c.test", "a@local.test", "b@local.test", "250 2.1.5 Ok"),
	}, {
		name:  "answer filter does not match",
		zone:  listed,
		cf:    clientRestrictions("reject_rbl_client", "zen.test=127.0.0.3"),
		steps: mail("c.test", "a@local.test", "b@local.test", "250 2.1.5 Ok"),
	}, {
		name:  "answer filter range matches",
		zone:  listed,
		cf:    clientRestrictions("reject_rbl_client", "zen.test=127.0.[0..1].[2;4..5]"),
		steps: mail("c.test", "a@local.test", "b@local.test", "554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using zen.test; Listed; see http://zen.test/?127.0.0.2"),
	}, {
		name:     "lookup failure: the client gets the benefit of the doubt",
		servfail: []string{"2.0.0.127.zen.test"},
		cf:       clientRestrictions("reject_rbl_client", "zen.test"),
		steps:    mail("c.test", "a@local.test", "b@local.test", "250 2.1.5 Ok"),
		logs:     []string{"warning: 2.0.0.127.zen.test: RBL lookup error: Host not found, try again"},
	}, {
		name: "maps_rbl_reject_code and reject_maps_rbl",
		zone: []string{"2.0.0.127.old.test. A 127.0.0.2"},
		cf: func(c *Config, dir string) {
			c.Codes.MapsRBLReject = 450
			c.DNS.MapsRBLDomains = []string{"none.test", "old.test"}
			c.ClientRestrictions = []string{"reject_maps_rbl"}
		},
		steps: mail("c.test", "a@local.test", "b@local.test", "450 4.7.1 Service unavailable; Client host [127.0.0.2] blocked using old.test"),
		logs:  []string{`warning: support for restriction "reject_maps_rbl" will be removed from Postfix; use "reject_rbl_client domain-name" instead`},
	}, {
		name: "rbl_reply_maps template with macros",
		zone: listed,
		// The key is the argument as written, "=pattern" included.
		tables: map[string]string{"rbl_reply": "zen.test=127.0.0.2 $rbl_code 5.7.9 $client_address listed by $rbl_domain (${rbl_txt}) for $rbl_what, $rbl_class${sender?, from $sender}\nzen.test 554 wrong key\n"},
		cf: func(c *Config, dir string) {
			c.DNS.RBLReplyMaps = []string{tbl(dir, "texthash", "rbl_reply")}
			c.ClientRestrictions = []string{"reject_rbl_client", "zen.test=127.0.0.2"}
		},
		steps: mail("c.test", "a@local.test", "b@local.test", "554 5.7.9 127.0.0.2 listed by zen.test (Listed; see http://zen.test/?127.0.0.2) for 127.0.0.2, Client host, from a@local.test"),
	}, {
		name:   "rbl_reply_maps: a bad template falls back to the default",
		zone:   listed,
		tables: map[string]string{"rbl_reply": "zen.test $rbl_code ${unbalanced\n"},
		cf: func(c *Config, dir string) {
			c.DNS.RBLReplyMaps = []string{tbl(dir, "texthash", "rbl_reply")}
			c.ClientRestrictions = []string{"reject_rbl_client", "zen.test"}
		},
		steps: mail("c.test", "a@local.test", "b@local.test", "554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using zen.test; Listed; see http://zen.test/?127.0.0.2"),
		logs:  []string{"warning: rbl_reject_reply: bad rbl reply template for domain zen.test: $rbl_code ${unbalanced"},
	}, {
		name:   "rbl_reply_maps: a reply without a code is a configuration error",
		zone:   listed,
		tables: map[string]string{"rbl_reply": "zen.test go away\n"},
		cf: func(c *Config, dir string) {
			c.DNS.RBLReplyMaps = []string{tbl(dir, "texthash", "rbl_reply")}
			c.ClientRestrictions = []string{"reject_rbl_client", "zen.test"}
		},
		steps: mail("c.test", "a@local.test", "b@local.test", "450 4.7.1 Service unavailable"),
		logs:  []string{"warning: rbl response code configuration error: go away"},
	}, {
		name:  "IPv4 DNSBL warns-only under warn_if_reject",
		zone:  listed,
		cf:    clientRestrictions("warn_if_reject", "reject_rbl_client", "zen.test"),
		steps: mail("c.test", "a@local.test", "b@local.test", "250 2.1.5 Ok"),
		logs:  []string{"NOQUEUE: reject_warning: RCPT from unknown[127.0.0.2]: 554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using zen.test"},
	}, {
		name:  "missing domain argument",
		cf:    clientRestrictions("reject_rbl_client"),
		steps: mail("c.test", "a@local.test", "b@local.test", "250 2.1.5 Ok"),
		logs:  []string{"warning: restriction reject_rbl_client requires domain name argument"},
	}})
}

func TestDNSWL(t *testing.T) {
	wl := []string{"2.0.0.127.wl.test. A 127.0.2.1"}
	runDNSDialogues(t, []dnsDialogue{{
		name:  "allowlisted client is permitted",
		zone:  wl,
		cf:    clientRestrictions("permit_dnswl_client", "wl.test", "reject"),
		steps: mail("c.test", "a@local.test", "b@local.test", "250 2.1.5 Ok"),
	}, {
		name:  "but never for relaying",
		zone:  wl,
		cf:    clientRestrictions("permit_dnswl_client", "wl.test", "reject"),
		steps: mail("c.test", "a@local.test", "r@remote.test", "554 5.7.1 <unknown[127.0.0.2]>: Client host rejected: Access denied"),
	}, {
		name:  "not allowlisted",
		cf:    clientRestrictions("permit_dnswl_client", "wl.test", "reject"),
		steps: mail("c.test", "a@local.test", "b@local.test", "554 5.7.1 <unknown[127.0.0.2]>: Client host rejected: Access denied"),
	}, {
		name:     "lookup failure turns a later reject into a deferral",
		servfail: []string{"2.0.0.127.wl.test"},
		cf:       clientRestrictions("permit_dnswl_client", "wl.test", "reject"),
		steps:    mail("c.test", "a@local.test", "b@local.test", "450 4.7.1 <127.0.0.2>: Client host rejected: Service unavailable"),
	}, {
		name:  "permit_rhswl_client by verified name",
		zone:  []string{"2.0.0.127.in-addr.arpa. PTR h.good.test.", "h.good.test. A 127.0.0.2", "h.good.test.rhswl.test. A 127.0.0.2"},
		cf:    clientRestrictions("permit_rhswl_client", "rhswl.test", "reject"),
		steps: mail("c.test", "a@local.test", "b@local.test", "250 2.1.5 Ok"),
	}})
}

func TestRHSBL(t *testing.T) {
	zone := []string{
		"spam.test.dbl.test. A 127.0.1.2", `spam.test.dbl.test. TXT "spam domain"`,
		"2.0.0.127.in-addr.arpa. PTR h.spam.test.", "h.spam.test. A 127.0.0.2",
		"h.spam.test.dbl.test. A 127.0.1.2",
	}
	runDNSDialogues(t, []dnsDialogue{{
		name:  "sender",
		zone:  zone,
		cf:    func(c *Config, dir string) { c.SenderRestrictions = []string{"reject_rhsbl_sender", "dbl.test"} },
		steps: mail("c.test", "a@spam.test", "b@local.test", "554 5.7.1 Service unavailable; Sender address [a@spam.test] blocked using dbl.test; spam domain"),
	}, {
		name:  "sender not listed",
		zone:  zone,
		cf:    func(c *Config, dir string) { c.SenderRestrictions = []string{"reject_rhsbl_sender", "dbl.test"} },
		steps: mail("c.test", "a@ham.test", "b@local.test", "250 2.1.5 Ok"),
	}, {
		name: "recipient",
		zone: zone,
		cf: func(c *Config, dir string) {
			trustClient(c)
			c.RecipientRestrictions = []string{"reject_rhsbl_recipient", "dbl.test"}
		},
		steps: mail("c.test", "a@local.test", "r@spam.test", "554 5.7.1 Service unavailable; Recipient address [r@spam.test] blocked using dbl.test; spam domain"),
	}, {
		name:  "helo",
		zone:  zone,
		cf:    func(c *Config, dir string) { c.HeloRestrictions = []string{"reject_rhsbl_helo", "dbl.test=127.0.1.2"} },
		steps: mail("spam.test", "a@local.test", "b@local.test", "554 5.7.1 Service unavailable; Helo command [spam.test] blocked using dbl.test; spam domain"),
	}, {
		name:  "client name",
		zone:  zone,
		cf:    clientRestrictions("reject_rhsbl_client", "dbl.test"),
		steps: mail("c.test", "a@local.test", "b@local.test", "554 5.7.1 Service unavailable; Client host [h.spam.test] blocked using dbl.test"),
	}, {
		name:  "reverse client name",
		zone:  []string{"2.0.0.127.in-addr.arpa. PTR h.spam.test.", "h.spam.test.dbl.test. A 127.0.1.2"},
		cf:    clientRestrictions("reject_rhsbl_client", "dbl.test", "reject_rhsbl_reverse_client", "dbl.test"),
		steps: mail("c.test", "a@local.test", "b@local.test", "554 5.7.1 Service unavailable; Unverified Client host [h.spam.test] blocked using dbl.test"),
	}, {
		name:  "numeric top-level names are not asked",
		zone:  []string{"1.2.3.4.dbl.test. A 127.0.1.2"},
		cf:    func(c *Config, dir string) { c.HeloRestrictions = []string{"reject_rhsbl_helo", "dbl.test"} },
		steps: mail("1.2.3.4", "a@local.test", "b@local.test", "250 2.1.5 Ok"),
	}})
}

func TestServerAccess(t *testing.T) {
	zone := []string{
		"x.test. MX 10 mx.bad.test.", "mx.bad.test. A 192.0.2.66",
		"y.test. MX 10 mx.y.test.", "mx.y.test. A 192.0.2.66",
		"nomx.test. A 192.0.2.66",
		"x.test. NS ns.bad.test.", "ns.bad.test. A 192.0.2.53",
		"helo.test. A 192.0.2.66",
		"good.test. MX 10 mx.good.test.", "mx.good.test. A 192.0.2.10",
		"nullmx.test. MX 0 .",
	}
	tables := map[string]string{"access": "mx.bad.test REJECT bad mx\n192.0.2.66 REJECT bad net\nns.bad.test 550 5.7.0 bad ns\ngood.test OK\nmx.good.test OK\n"}
	list := func(where string, l ...string) func(c *Config, dir string) {
		return func(c *Config, dir string) {
			for i, s := range l {
				if s == "TABLE" {
					l[i] = tbl(dir, "texthash", "access")
				}
			}
			switch where {
			case "helo":
				c.HeloRestrictions = l
			case "sender":
				c.SenderRestrictions = l
			case "relay":
				c.RelayRestrictions = append(l, "reject_unauth_destination")
			}
		}
	}
	runDNSDialogues(t, []dnsDialogue{{
		name: "sender MX by name", zone: zone, tables: tables,
		cf:    list("sender", "check_sender_mx_access", "TABLE"),
		steps: mail("c.test", "a@x.test", "b@local.test", "554 5.7.1 <a@x.test>: Sender address rejected: bad mx"),
	}, {
		name: "sender MX by address", zone: zone, tables: tables,
		cf:    list("sender", "check_sender_mx_access", "TABLE"),
		steps: mail("c.test", "a@y.test", "b@local.test", "554 5.7.1 <a@y.test>: Sender address rejected: bad net"),
	}, {
		name: "no MX: the domain is its own MX", zone: zone, tables: tables,
		cf:    list("sender", "check_sender_mx_access", "TABLE"),
		steps: mail("c.test", "a@nomx.test", "b@local.test", "554 5.7.1 <a@nomx.test>: Sender address rejected: bad net"),
	}, {
		name: "null MX is left alone", zone: zone, tables: tables,
		cf:    list("sender", "check_sender_mx_access", "TABLE"),
		steps: mail("c.test", "a@nullmx.test", "b@local.test", "250 2.1.5 Ok"),
	}, {
		name: "sender NS of the parent domain", zone: zone, tables: tables,
		cf:    list("sender", "check_sender_ns_access", "TABLE"),
		steps: mail("c.test", "a@sub.x.test", "b@local.test", "550 5.7.0 <a@sub.x.test>: Sender address rejected: bad ns"),
	}, {
		name: "helo A", zone: zone, tables: tables,
		cf:    list("helo", "check_helo_a_access", "TABLE"),
		steps: mail("helo.test", "a@local.test", "b@local.test", "554 5.7.1 <helo.test>: Helo command rejected: bad net"),
	}, {
		name: "an OK is refused", zone: zone, tables: tables,
		cf:    list("sender", "check_sender_mx_access", "TABLE"),
		steps: mail("c.test", "a@good.test", "b@local.test", "451 4.3.5 Server configuration error"),
		logs:  []string{"warning: restriction check_sender_mx_access returns OK for a@good.test", "warning: this is not allowed for security reasons"},
	}, {
		name: "recipient address literal is its own MX", zone: zone, tables: tables,
		cf:    list("relay", "check_recipient_mx_access", "TABLE"),
		steps: mail("c.test", "a@local.test", "r@[192.0.2.66]", "554 5.7.1 <r@[192.0.2.66]>: Recipient address rejected: bad net"),
	}, {
		name: "MX lookup failure is not a reason to reject", zone: zone, tables: tables, servfail: []string{"broken.test"},
		cf:    list("sender", "check_sender_mx_access", "TABLE"),
		steps: mail("c.test", "a@broken.test", "b@local.test", "250 2.1.5 Ok"),
		logs:  []string{"warning: Unable to look up MX host for broken.test: Host not found, try again"},
	}, {
		name: "client A by verified name", tables: tables,
		zone:  []string{"2.0.0.127.in-addr.arpa. PTR h.client.test.", "h.client.test. A 127.0.0.2", "h.client.test. A 192.0.2.66"},
		cf:    clientRestrictionsTable("check_client_a_access"),
		steps: mail("c.test", "a@local.test", "b@local.test", "554 5.7.1 <h.client.test[127.0.0.2]>: Client host rejected: bad net"),
	}})
}

func clientRestrictionsTable(name string) func(c *Config, dir string) {
	return func(c *Config, dir string) {
		c.ClientRestrictions = []string{name, tbl(dir, "texthash", "access")}
	}
}

func TestPermitMXBackup(t *testing.T) {
	zone := []string{
		"backed.test. MX 10 primary.other.test.", "backed.test. MX 20 backup.mx.test.",
		"primary.other.test. A 192.0.2.20",
		"byaddr.test. MX 10 primary.other.test.", "byaddr.test. MX 20 me.elsewhere.test.",
		"me.elsewhere.test. A 127.0.0.1",
		"primary.test. MX 10 backup.mx.test.", "primary.test. MX 20 other.test.",
		"unrelated.test. MX 10 primary.other.test.",
	}
	cf := func(c *Config, dir string) {
		c.DNS.IsLocal = func(h string) bool { return h == "backup.mx.test" }
		c.RelayRestrictions = []string{"permit_mx_backup", "reject_unauth_destination"}
	}
	runDNSDialogues(t, []dnsDialogue{{
		name: "backup MX by name", zone: zone, cf: cf,
		steps: mail("c.test", "a@x.test", "r@backed.test", "250 2.1.5 Ok"),
	}, {
		name: "backup MX by address", zone: zone, cf: cf,
		steps: mail("c.test", "a@x.test", "r@byaddr.test", "250 2.1.5 Ok"),
	}, {
		name: "primary MX is not permitted", zone: zone, cf: cf,
		steps: mail("c.test", "a@x.test", "r@primary.test", "554 5.7.1 <r@primary.test>: Relay access denied"),
	}, {
		name: "not an MX", zone: zone, cf: cf,
		steps: mail("c.test", "a@x.test", "r@unrelated.test", "554 5.7.1 <r@unrelated.test>: Relay access denied"),
	}, {
		name: "our own domain", zone: zone, cf: cf,
		steps: mail("c.test", "a@x.test", "r@local.test", "250 2.1.5 Ok"),
	}, {
		name: "primary outside permit_mx_backup_networks", zone: zone,
		cf: func(c *Config, dir string) {
			cf(c, dir)
			c.DNS.PermitMXBackupNetworks, _ = matchlist.ParseNetworks([]string{"198.51.100.0/24"})
		},
		steps: mail("c.test", "a@x.test", "r@backed.test", "554 5.7.1 <r@backed.test>: Relay access denied"),
	}, {
		name: "primary inside permit_mx_backup_networks", zone: zone,
		cf: func(c *Config, dir string) {
			cf(c, dir)
			c.DNS.PermitMXBackupNetworks, _ = matchlist.ParseNetworks([]string{"192.0.2.0/24"})
		},
		steps: mail("c.test", "a@x.test", "r@backed.test", "250 2.1.5 Ok"),
	}, {
		name: "MX lookup failure defers the reject", zone: zone, servfail: []string{"fail.test"}, cf: cf,
		steps: mail("c.test", "a@x.test", "r@fail.test", "450 4.4.4 <r@fail.test>: Recipient address rejected: Unable to look up mail exchanger information: Host not found, try again"),
	}})
}

func TestDNSConfigErrors(t *testing.T) {
	cfg := baseConfig(&recorder{}, &logBuf{})
	r, _ := dnsq.New(dnsq.Config{Servers: []string{"127.0.0.1:9"}})
	cfg.DNS.Resolver = r
	cfg.ClientRestrictions = []string{"reject_rbl_client", "zen.test=127.0.0.[2..x]"}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "RBL reply error") {
		t.Errorf("bad reply filter: %v", err)
	}
	cfg.ClientRestrictions = nil
	cfg.DNS.UnknownAddressTempfailAction = "reject"
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "tempfail action") {
		t.Errorf("bad tempfail action: %v", err)
	}
	cfg.DNS.UnknownAddressTempfailAction = ""
	cfg.DNS.DefaultRBLReply = "$rbl_code ${oops"
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "bad default rbl reply") {
		t.Errorf("bad default_rbl_reply: %v", err)
	}
	// Names Postfix 3.7 does not know stay unknown.
	cfg.DNS.DefaultRBLReply = ""
	for _, n := range []string{"reject_unknown_forward_client_hostname", "check_reverse_client_a_access"} {
		cfg.ClientRestrictions = []string{n}
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "unknown smtpd restriction") {
			t.Errorf("%s: %v", n, err)
		}
	}
}

func TestExpandMacros(t *testing.T) {
	vars := map[string]string{"a": "A", "empty": "", "ctl": "x\x01y"}
	lookup := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	for _, c := range []struct{ in, want string }{
		{"$a ${a} $(a) $$", "A A A $"},
		{"x${a?; $a}", "x; A"},
		{"x${empty?; $a}", "x"},
		{"${empty:none}", "none"},
		{"${a:none}", ""},
		{"${a?{yes}:{no}} ${empty?{yes}:{no}}", "yes no"},
		{"$ctl", "x y"},
	} {
		if got, err := expandMacros(c.in, lookup); err != nil || got != c.want {
			t.Errorf("expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"$nope", "${a", "$", "$ x"} {
		if _, err := expandMacros(bad, lookup); err == nil {
			t.Errorf("expand(%q): no error", bad)
		}
	}
}

func TestReversedAddr(t *testing.T) {
	if got := reversedAddr("192.0.2.9"); got != "9.2.0.192" {
		t.Errorf("IPv4: %s", got)
	}
	if got := reversedAddr("2001:db8::1"); got != "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2" {
		t.Errorf("IPv6: %s", got)
	}
}
