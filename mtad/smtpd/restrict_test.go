package smtpd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sqlmta/internal/testdb"
	"sqlmta/mapdrivers"
	"sqlmta/mapdrivers/filemap"
	"sqlmta/mapdrivers/managed"
	"sqlmta/mtad/matchlist"
	"sqlmta/store"
	"sqlmta/store/sqlite"
)

// fileMaps opens the file and pattern tables the tests use; hash: names a
// managed table in st when st is set.
func fileMaps(st store.MapStore) func(ctx context.Context, spec string) (mapdrivers.Map, error) {
	quiet := filemap.WithWarn(func(string) {})
	return func(ctx context.Context, spec string) (mapdrivers.Map, error) {
		typ, name, _ := strings.Cut(spec, ":")
		switch typ {
		case "texthash":
			return filemap.OpenTexthash(name, quiet)
		case "cidr":
			return filemap.OpenCIDR(name, quiet)
		case "regexp":
			return filemap.OpenRegexp(name, quiet)
		case "pcre":
			return filemap.OpenPCRE(name, quiet)
		case "inline":
			return filemap.OpenInline(name)
		case "fail":
			return filemap.OpenFail(name)
		case "hash":
			if st != nil {
				return managed.Open(st, typ, name, managed.Options{CacheTTL: -1}), nil
			}
		}
		return nil, fmt.Errorf("unsupported map type %q", typ)
	}
}

// dialogue is one SMTP conversation against a server configured by cf.
type dialogue struct {
	name   string
	tables map[string]string // file name → content, in the test's directory
	cf     func(c *Config, dir string)
	steps  []string // "C: command" sends; anything else is an expected reply line
	logs   []string // lines the mail log must contain ({name} = client name)
	check  func(t *testing.T, ts *testServer)
}

// untrusted makes the test client an outsider: 127.0.0.1 is not in
// mynetworks, so only the restrictions decide.
func untrusted(c *Config) {
	nets, _ := matchlist.ParseNetworks([]string{"10.0.0.0/8"})
	c.MyNetworks = nets
	c.RelayRestrictions = []string{"reject_unauth_destination"}
}

func runDialogues(t *testing.T, cases []dialogue) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.tables {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ts := start(t, func(c *Config) {
				untrusted(c)
				c.OpenMap = fileMaps(nil)
				if tc.cf != nil {
					tc.cf(c, dir)
				}
			})
			c := ts.dial(t)
			name := ""
			for _, step := range tc.steps {
				if cmd, ok := strings.CutPrefix(step, "C: "); ok {
					c.send(cmd)
					continue
				}
				if strings.Contains(step, "{name}") && name == "" {
					name = clientName(t, ts)
				}
				if step == "EOF" {
					c.expectEOF()
					continue
				}
				c.expect(strings.ReplaceAll(step, "{name}", name))
			}
			for _, l := range tc.logs {
				if name == "" {
					name = clientName(t, ts)
				}
				ts.log.wait(t, strings.ReplaceAll(l, "{name}", name))
			}
			if tc.check != nil {
				tc.check(t, ts)
			}
		})
	}
}

// tbl names a table file of the test directory.
func tbl(dir, typ, file string) string { return typ + ":" + filepath.Join(dir, file) }

const banner = "220 mx.test ESMTP Postfix"

func TestAccessMapLookupOrder(t *testing.T) {
	runDialogues(t, []dialogue{{
		name:   "parent domain matches subdomain sender",
		tables: map[string]string{"access": "example.com REJECT no spam from you\n"},
		cf: func(c *Config, dir string) {
			c.SenderRestrictions = []string{"check_sender_access", tbl(dir, "texthash", "access")}
		},
		steps: []string{banner, "C: EHLO client.test", "250-mx.test", "250-PIPELINING", "250-SIZE 10240000", "250-VRFY", "250-ETRN",
			"250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-DSN", "250-SMTPUTF8", "250 CHUNKING",
			"C: MAIL FROM:<a@sub.example.com>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "554 5.7.1 <a@sub.example.com>: Sender address rejected: no spam from you",
			"C: RSET", "250 2.0.0 Ok",
			"C: MAIL FROM:<a@notexample.com>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "250 2.1.5 Ok"},
		logs: []string{"NOQUEUE: reject: RCPT from {name}[127.0.0.1]: 554 5.7.1 <a@sub.example.com>: Sender address rejected: no spam from you; from=<a@sub.example.com> to=<bob@local.test> proto=ESMTP helo=<client.test>"},
	}, {
		name:   "parent keys need a dot without parent_domain_matches_subdomains",
		tables: map[string]string{"access": "example.com REJECT\n.example.org REJECT\n"},
		cf: func(c *Config, dir string) {
			c.AccessParentDot = true
			c.SenderRestrictions = []string{"check_sender_access", tbl(dir, "texthash", "access")}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test",
			"C: MAIL FROM:<a@sub.example.com>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "250 2.1.5 Ok",
			"C: RSET", "250 2.0.0 Ok",
			"C: MAIL FROM:<a@sub.example.org>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "554 5.7.1 <a@sub.example.org>: Sender address rejected: Access denied",
			"C: RSET", "250 2.0.0 Ok",
			"C: MAIL FROM:<a@example.com>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "554 5.7.1 <a@example.com>: Sender address rejected: Access denied"},
	}, {
		name: "extension, user@, DUNNO stops shorter keys",
		tables: map[string]string{"access": strings.Join([]string{
			"joe+spam@local.test REJECT extension",
			"joe@local.test 550 5.1.1 bare user",
			"ann@ DUNNO",
			"local.test 450 domain",
			"sam@ 521 go away",
		}, "\n") + "\n"},
		cf: func(c *Config, dir string) {
			c.RecipientDelimiter = "+"
			c.RecipientRestrictions = []string{"check_recipient_access", tbl(dir, "texthash", "access")}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<s@x.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<joe+spam@local.test>", "554 5.7.1 <joe+spam@local.test>: Recipient address rejected: extension",
			"C: RCPT TO:<joe+other@local.test>", "550 5.1.1 <joe+other@local.test>: Recipient address rejected: bare user",
			"C: RCPT TO:<Joe@LOCAL.test>", "550 5.1.1 <Joe@LOCAL.test>: Recipient address rejected: bare user",
			"C: RCPT TO:<kim@local.test>", "450 4.7.1 <kim@local.test>: Recipient address rejected: domain",
			// user@ comes after the domain, so the domain wins for ann.
			"C: RCPT TO:<ann@local.test>", "450 4.7.1 <ann@local.test>: Recipient address rejected: domain",
			"C: RCPT TO:<ann@mx.test>", "250 2.1.5 Ok",
			"C: RCPT TO:<sam+x@mx.test>", "521 5.7.1 <sam+x@mx.test>: Recipient address rejected: go away",
			"EOF"},
	}, {
		name:   "DUNNO on the full key stops the domain",
		tables: map[string]string{"access": "vip@example.com DUNNO\nexample.com REJECT\n"},
		cf: func(c *Config, dir string) {
			c.SenderRestrictions = []string{"check_sender_access", tbl(dir, "texthash", "access")}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test",
			"C: MAIL FROM:<vip@example.com>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "250 2.1.5 Ok",
			"C: RSET", "250 2.0.0 Ok",
			"C: MAIL FROM:<other@example.com>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "554 5.7.1 <other@example.com>: Sender address rejected: Access denied"},
	}, {
		name:   "null sender is looked up as <>",
		tables: map[string]string{"access": "<> 550 5.1.1 no bounces here\n"},
		cf: func(c *Config, dir string) {
			c.SenderRestrictions = []string{"check_sender_access", tbl(dir, "texthash", "access")}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test",
			"C: MAIL FROM:<>", "250 2.1.0 Ok",
			// 5.1.1 is a recipient code: for a sender it becomes 5.1.7 (Postfix 3.7, checked against it).
			"C: RCPT TO:<bob@local.test>", "550 5.1.7 <>: Sender address rejected: no bounces here"},
		logs: []string{"reject: RCPT from {name}[127.0.0.1]: 550 5.1.7 <>: Sender address rejected: no bounces here; from=<> to=<bob@local.test> proto=SMTP helo=<c.test>"},
	}, {
		name:   "cidr client table",
		tables: map[string]string{"clients": "10.0.0.0/8 OK\n127.0.0.0/8 REJECT loopback not welcome\n"},
		cf: func(c *Config, dir string) {
			c.ClientRestrictions = []string{"check_client_access", tbl(dir, "cidr", "clients")}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<s@x.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "554 5.7.1 <{name}[127.0.0.1]>: Client host rejected: loopback not welcome"},
	}, {
		name:   "client address and shorter networks in a fixed table",
		tables: map[string]string{"clients": "127.0 REJECT short network\n"},
		cf: func(c *Config, dir string) {
			c.ClientRestrictions = []string{"check_client_access", tbl(dir, "texthash", "clients")}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<s@x.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "554 5.7.1 <{name}[127.0.0.1]>: Client host rejected: short network"},
	}, {
		name: "pattern table gets only the full key, case kept",
		tables: map[string]string{"senders": strings.Join([]string{
			"/^example\\.com$/ REJECT domain key",
			"/^joe@$/ REJECT user key",
			"/^big@/ REJECT lowered",
		}, "\n") + "\n"},
		cf: func(c *Config, dir string) {
			c.SenderRestrictions = []string{"check_sender_access", tbl(dir, "pcre", "senders")}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test",
			"C: MAIL FROM:<joe@example.com>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "250 2.1.5 Ok",
			"C: RSET", "250 2.0.0 Ok",
			// The resolved address is lowercased, as Postfix's resolver does.
			"C: MAIL FROM:<Big@x.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "554 5.7.1 <Big@x.test>: Sender address rejected: lowered"},
	}, {
		name:   "helo name and its parents",
		tables: map[string]string{"helo": "bad.test REJECT go away\n"},
		cf: func(c *Config, dir string) {
			c.HeloRestrictions = []string{"check_helo_access", tbl(dir, "texthash", "helo")}
		},
		steps: []string{banner, "C: HELO host.bad.test", "250 mx.test", "C: MAIL FROM:<s@x.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "554 5.7.1 <host.bad.test>: Helo command rejected: go away"},
	}, {
		name:   "unqualified sender is qualified before lookup",
		tables: map[string]string{"access": "joe@origin.test REJECT qualified\n"},
		cf: func(c *Config, dir string) {
			c.Qualify = func(a string) string {
				if !strings.Contains(a, "@") {
					return a + "@origin.test"
				}
				return a
			}
			c.SenderRestrictions = []string{"check_sender_access", tbl(dir, "texthash", "access")}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<joe>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "554 5.7.1 <joe>: Sender address rejected: qualified"},
	}})
}

func TestAccessActions(t *testing.T) {
	runDialogues(t, []dialogue{{
		name: "every action",
		tables: map[string]string{"access": strings.Join([]string{
			"ok@local.test OK",
			"relay@local.test RELAY",
			"digits@local.test 20240101",
			"rej@local.test REJECT",
			"rejtext@local.test REJECT 5.2.2 mailbox full",
			"def@local.test DEFER",
			"deftext@local.test DEFER 4.2.0 later",
			"c451@local.test 451 4.3.0 try later",
			"c550@local.test 550 bad",
			"c550dsn@local.test 550 5.1.6 moved",
			"csender@local.test 550 5.1.8 bad sender dsn",
			"nodigits@local.test 450",
			"dunno@local.test DUNNO",
			"warn@local.test WARN look at this",
			"info@local.test INFO just saying",
			"hold@local.test HOLD",
			"filter@local.test FILTER smtp:[10.0.0.1]:10025",
			"badfilter@local.test FILTER nocolon",
			"redirect@local.test REDIRECT other@local.test",
			"bcc@local.test BCC copy@local.test",
			"prepend@local.test PREPEND X-Tag: yes",
			"badprepend@local.test PREPEND not a header",
			"restr@local.test reject",
			"class@local.test myclass",
			"table@local.test texthash:/x",
			"unknown@local.test no_such_restriction",
		}, "\n") + "\n"},
		cf: func(c *Config, dir string) {
			c.RestrictionClasses = map[string][]string{"myclass": {"reject_non_fqdn_helo_hostname", "permit"}}
			c.RecipientRestrictions = []string{"check_recipient_access", tbl(dir, "texthash", "access"), "reject"}
		},
		steps: []string{banner, "C: HELO c", "250 mx.test", "C: MAIL FROM:<s@x.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<ok@local.test>", "250 2.1.5 Ok",
			"C: RCPT TO:<relay@local.test>", "250 2.1.5 Ok",
			"C: RCPT TO:<digits@local.test>", "250 2.1.5 Ok",
			"C: RCPT TO:<rej@local.test>", "554 5.7.1 <rej@local.test>: Recipient address rejected: Access denied",
			"C: RCPT TO:<rejtext@local.test>", "554 5.2.2 <rejtext@local.test>: Recipient address rejected: mailbox full",
			"C: RCPT TO:<def@local.test>", "450 4.7.1 <def@local.test>: Recipient address rejected: Access denied",
			"C: RCPT TO:<deftext@local.test>", "450 4.2.0 <deftext@local.test>: Recipient address rejected: later",
			"C: RCPT TO:<c451@local.test>", "451 4.3.0 <c451@local.test>: Recipient address rejected: try later",
			"C: RCPT TO:<c550@local.test>", "550 5.7.1 <c550@local.test>: Recipient address rejected: bad",
			"C: RCPT TO:<c550dsn@local.test>", "550 5.1.6 <c550dsn@local.test>: Recipient address rejected: moved",
			"C: RCPT TO:<csender@local.test>", "550 5.1.2 <csender@local.test>: Recipient address rejected: bad sender dsn",
			"C: RCPT TO:<nodigits@local.test>", "250 2.1.5 Ok", // all digits: OK
			"C: RCPT TO:<dunno@local.test>", "554 5.7.1 <dunno@local.test>: Recipient address rejected: Access denied",
			"C: RCPT TO:<warn@local.test>", "554 5.7.1 <warn@local.test>: Recipient address rejected: Access denied",
			"C: RCPT TO:<info@local.test>", "554 5.7.1 <info@local.test>: Recipient address rejected: Access denied",
			"C: RCPT TO:<hold@local.test>", "554 5.7.1 <hold@local.test>: Recipient address rejected: Access denied",
			"C: RCPT TO:<restr@local.test>", "554 5.7.1 <restr@local.test>: Recipient address rejected: Access denied",
			"C: RCPT TO:<class@local.test>", "504 5.5.2 <c>: Helo command rejected: need fully-qualified hostname",
			"C: RCPT TO:<table@local.test>", "451 4.3.5 Server configuration error",
			"C: RCPT TO:<unknown@local.test>", "451 4.3.5 Server configuration error",
		},
		logs: []string{
			": warn: RCPT from {name}[127.0.0.1]: look at this; from=<s@x.test> to=<warn@local.test> proto=SMTP helo=<c>",
			": info: RCPT from {name}[127.0.0.1]: just saying; from=<s@x.test> to=<info@local.test> proto=SMTP helo=<c>",
			": hold: RCPT from {name}[127.0.0.1]: <hold@local.test>: Recipient address triggers HOLD action; from=<s@x.test> to=<hold@local.test>",
			"warning: access table texthash:",
			"has entry with lookup table: texthash:/x",
			`warning: unknown smtpd restriction: "no_such_restriction"`,
		},
	}, {
		name: "side effects reach the envelope",
		tables: map[string]string{"access": strings.Join([]string{
			"hold@local.test HOLD held for review",
			"filter@local.test FILTER smtp:[10.0.0.1]:10025",
			"badfilter@local.test FILTER nocolon",
			"redirect@local.test REDIRECT other@local.test",
			"bcc@local.test BCC copy@local.test",
			"prepend@local.test PREPEND X-Tag: yes",
			"badprepend@local.test PREPEND not a header",
		}, "\n") + "\n"},
		cf: func(c *Config, dir string) {
			c.RecipientRestrictions = []string{"check_recipient_access", tbl(dir, "texthash", "access"), "permit_auth_destination", "reject"}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<s@x.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<hold@local.test>", "250 2.1.5 Ok",
			"C: RCPT TO:<filter@local.test>", "250 2.1.5 Ok",
			"C: RCPT TO:<badfilter@local.test>", "250 2.1.5 Ok",
			"C: RCPT TO:<redirect@local.test>", "250 2.1.5 Ok",
			"C: RCPT TO:<bcc@local.test>", "250 2.1.5 Ok",
			"C: RCPT TO:<prepend@local.test>", "250 2.1.5 Ok",
			"C: RCPT TO:<badprepend@local.test>", "250 2.1.5 Ok",
			"C: DATA", "354 End data with <CR><LF>.<CR><LF>",
			"C: Subject: x", "C: ", "C: body", "C: .",
		},
		logs: []string{
			": hold: RCPT from {name}[127.0.0.1]: <hold@local.test>: Recipient address held for review; from=<s@x.test> to=<hold@local.test> proto=SMTP helo=<c.test>",
			": filter: RCPT from {name}[127.0.0.1]: <filter@local.test>: Recipient address triggers FILTER smtp:[10.0.0.1]:10025;",
			": redirect: RCPT from {name}[127.0.0.1]: <redirect@local.test>: Recipient address triggers REDIRECT other@local.test;",
			": bcc: RCPT from {name}[127.0.0.1]: <bcc@local.test>: Recipient address triggers BCC copy@local.test;",
			`entry "badfilter@local.test" requires transport:destination`,
			`entry "badprepend@local.test" requires header: text`,
		},
		check: func(t *testing.T, ts *testServer) {
			waitFor(t, "submission", func() bool { return ts.rec.count() == 1 })
			env := ts.rec.envs[0]
			if !env.Hold || env.Discard || env.Filter != "smtp:[10.0.0.1]:10025" || env.Redirect != "other@local.test" ||
				strings.Join(env.Bcc, ",") != "copy@local.test" || strings.Join(env.Prepend, "|") != "X-Tag: yes" {
				t.Errorf("envelope actions: %+v", env)
			}
		},
	}, {
		name:   "DISCARD permits and is answered 250",
		tables: map[string]string{"access": "spam.test DISCARD\n"},
		cf: func(c *Config, dir string) {
			c.SenderRestrictions = []string{"check_sender_access", tbl(dir, "texthash", "access")}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<x@spam.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<anyone@remote.example>", "250 2.1.5 Ok", // discard skips the relay check
			"C: DATA", "354 End data with <CR><LF>.<CR><LF>", "C: .",
		},
		logs: []string{": discard: RCPT from {name}[127.0.0.1]: <x@spam.test>: Sender address triggers DISCARD action; from=<x@spam.test> to=<anyone@remote.example>"},
		check: func(t *testing.T, ts *testServer) {
			waitFor(t, "submission", func() bool { return ts.rec.count() == 1 })
			if !ts.rec.envs[0].Discard {
				t.Error("Discard not set")
			}
		},
	}, {
		name:   "lookup error answers 451 4.3.5",
		cf:     func(c *Config, dir string) { c.SenderRestrictions = []string{"check_sender_access", "fail:broken"} },
		steps:  []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok", "C: RCPT TO:<bob@local.test>", "451 4.3.5 <a@b.test>: Sender address rejected: Server configuration error"},
		logs:   []string{"warning: fail:broken lookup error"},
		tables: nil,
	}, {
		name:   "defer_if_permit and defer_if_reject actions",
		tables: map[string]string{"access": "dip.test DEFER_IF_PERMIT maybe later\ndir.test DEFER_IF_REJECT 4.7.9 not sure\n"},
		cf: func(c *Config, dir string) {
			c.SenderRestrictions = []string{"check_sender_access", tbl(dir, "texthash", "access")}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test",
			"C: MAIL FROM:<a@dip.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "450 4.7.1 <a@dip.test>: Sender address rejected: maybe later",
			"C: RCPT TO:<bob@remote.example>", "554 5.7.1 <bob@remote.example>: Relay access denied",
			"C: RSET", "250 2.0.0 Ok",
			// defer_if_reject lasts only for its own stage (the sender list).
			"C: MAIL FROM:<a@dir.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@remote.example>", "554 5.7.1 <bob@remote.example>: Relay access denied"},
	}, {
		name:   "421 disconnects",
		tables: map[string]string{"clients": "127.0.0.1 421 4.7.0 closing\n"},
		cf: func(c *Config, dir string) {
			c.ClientRestrictions = []string{tbl(dir, "texthash", "clients")}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "421 4.7.0 <{name}[127.0.0.1]>: Client host rejected: closing", "EOF"},
	}})
}

func TestRestrictions(t *testing.T) {
	runDialogues(t, []dialogue{{
		name: "reject and defer with their codes",
		cf: func(c *Config, dir string) {
			c.Codes.Reject = 550
			c.SenderRestrictions = []string{"reject"}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "550 5.7.1 <a@b.test>: Sender address rejected: Access denied"},
	}, {
		name: "defer",
		cf:   func(c *Config, dir string) { c.HeloRestrictions = []string{"defer", "permit"} },
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "450 4.3.2 <c.test>: Helo command rejected: Try again later"},
		logs: []string{"warning: restriction `permit' after `defer' is ignored"},
	}, {
		name: "helo syntax checks",
		cf: func(c *Config, dir string) {
			c.HeloRestrictions = []string{"reject_invalid_helo_hostname", "reject_non_fqdn_helo_hostname"}
		},
		steps: []string{banner,
			"C: HELO bad_-.test", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "501 5.5.2 <bad_-.test>: Helo command rejected: Invalid name",
			"C: HELO single", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "504 5.5.2 <single>: Helo command rejected: need fully-qualified hostname",
			"C: HELO [1.2.3.999]", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "501 5.5.2 <[1.2.3.999]>: Helo command rejected: invalid ip address",
			"C: HELO [192.0.2.1]", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "250 2.1.5 Ok",
			"C: HELO good.test.", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "250 2.1.5 Ok"},
	}, {
		name: "non-fqdn sender and recipient",
		cf: func(c *Config, dir string) {
			c.SenderRestrictions = []string{"reject_non_fqdn_sender"}
			c.RecipientRestrictions = []string{"reject_non_fqdn_recipient"}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test",
			"C: MAIL FROM:<a@b>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "504 5.5.2 <a@b>: Sender address rejected: need fully-qualified address",
			"C: RSET", "250 2.0.0 Ok",
			"C: MAIL FROM:<>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob>", "504 5.5.2 <bob>: Recipient address rejected: need fully-qualified address",
			"C: RCPT TO:<bob@[192.0.2.1]>", "554 5.7.1 <bob@[192.0.2.1]>: Relay access denied",
			"C: RCPT TO:<bob@local.test>", "250 2.1.5 Ok"},
	}, {
		name: "multi-recipient bounce",
		cf:   func(c *Config, dir string) { c.DataRestrictions = []string{"reject_multi_recipient_bounce"} },
		steps: []string{banner, "C: HELO c.test", "250 mx.test",
			"C: MAIL FROM:<>", "250 2.1.0 Ok",
			"C: RCPT TO:<a@local.test>", "250 2.1.5 Ok",
			"C: RCPT TO:<b@local.test>", "250 2.1.5 Ok",
			"C: DATA", "550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce"},
		logs: []string{": reject: DATA from {name}[127.0.0.1]: 550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce; from=<> proto=SMTP helo=<c.test>"},
	}, {
		name: "end-of-data restrictions",
		cf:   func(c *Config, dir string) { c.EndOfDataRestrictions = []string{"reject"} },
		steps: []string{banner, "C: HELO c.test", "250 mx.test",
			"C: MAIL FROM:<s@x.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<a@local.test>", "250 2.1.5 Ok",
			"C: DATA", "354 End data with <CR><LF>.<CR><LF>", "C: hi", "C: .",
			"554 5.7.1 <END-OF-DATA>: End-of-data rejected: Access denied"},
		logs: []string{": reject: END-OF-MESSAGE from {name}[127.0.0.1]: 554 5.7.1 <END-OF-DATA>: End-of-data rejected: Access denied; from=<s@x.test> to=<a@local.test> proto=SMTP helo=<c.test>"},
		check: func(t *testing.T, ts *testServer) {
			if ts.rec.count() != 0 {
				t.Error("rejected message was submitted")
			}
		},
	}, {
		name: "warn_if_reject",
		cf: func(c *Config, dir string) {
			c.SenderRestrictions = []string{"warn_if_reject", "reject_non_fqdn_sender", "reject_non_fqdn_sender"}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<a@b>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "504 5.5.2 <a@b>: Sender address rejected: need fully-qualified address"},
		logs: []string{"NOQUEUE: reject_warning: RCPT from {name}[127.0.0.1]: 504 5.5.2 <a@b>: Sender address rejected: need fully-qualified address;"},
	}, {
		name: "defer_if_permit restriction and its carry-over",
		cf: func(c *Config, dir string) {
			c.ClientRestrictions = []string{"defer_if_permit"}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "450 4.7.0 <{name}[127.0.0.1]>: Client host rejected: defer_if_permit requested",
			"C: RCPT TO:<bob@remote.example>", "554 5.7.1 <bob@remote.example>: Relay access denied"},
	}, {
		name: "defer_if_reject turns a later 5xx into 4xx",
		cf: func(c *Config, dir string) {
			c.RecipientRestrictions = []string{"defer_if_reject", "reject"}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "450 4.7.0 <bob@local.test>: Recipient address rejected: defer_if_reject requested"},
	}, {
		name: "restriction class and soft_bounce",
		cf: func(c *Config, dir string) {
			c.SoftBounce = true
			c.RestrictionClasses = map[string][]string{"strict": {"reject_non_fqdn_sender", "reject"}}
			c.SenderRestrictions = []string{"strict"}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "454 4.7.1 <a@b.test>: Sender address rejected: Access denied"},
	}, {
		name: "permit_inet_interfaces, plaintext, pipelining",
		cf: func(c *Config, dir string) {
			c.ClientRestrictions = []string{"reject_unauth_pipelining", "permit_inet_interfaces", "reject_plaintext_session"}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "250 2.1.5 Ok"},
	}, {
		name: "plaintext session",
		cf:   func(c *Config, dir string) { c.ClientRestrictions = []string{"reject_plaintext_session"} },
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "450 4.7.1 Session encryption is required"},
	}, {
		name: "check_relay_domains",
		cf: func(c *Config, dir string) {
			c.RelayRestrictions = []string{}
			c.RecipientRestrictions = []string{"check_relay_domains"}
		},
		steps: []string{banner, "C: HELO c.test", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "250 2.1.5 Ok",
			"C: RCPT TO:<bob@remote.example>", "554 5.7.1 <bob@remote.example>: Recipient address rejected: Relay access denied"},
		logs: []string{`warning: support for restriction "check_relay_domains" will be removed`},
	}, {
		name: "permit_naked_ip_address",
		cf: func(c *Config, dir string) {
			c.HeloRestrictions = []string{"permit_naked_ip_address", "reject"}
		},
		steps: []string{banner, "C: HELO 192.0.2.1", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "250 2.1.5 Ok",
			"C: HELO c.test", "250 mx.test", "C: MAIL FROM:<a@b.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "554 5.7.1 <c.test>: Helo command rejected: Access denied"},
		logs: []string{"warning: restriction permit_naked_ip_address is deprecated"},
	}})
}

func TestNoDelayReject(t *testing.T) {
	runDialogues(t, []dialogue{{
		name: "client rejected at connect",
		cf: func(c *Config, dir string) {
			c.NoDelayReject = true
			c.ClientRestrictions = []string{"reject"}
		},
		steps: []string{"554 5.7.1 <{name}[127.0.0.1]>: Client host rejected: Access denied",
			"C: HELO c.test", "503 5.7.0 Error: access denied for {name}[127.0.0.1]",
			"C: MAIL FROM:<a@b.test>", "503 5.7.0 Error: access denied for {name}[127.0.0.1]",
			"C: QUIT", "221 2.0.0 Bye", "EOF"},
		logs: []string{"NOQUEUE: reject: CONNECT from {name}[127.0.0.1]: 554 5.7.1 <{name}[127.0.0.1]>: Client host rejected: Access denied; proto=SMTP"},
	}, {
		name:   "helo and sender rejected at their commands",
		tables: map[string]string{"access": "bad.test REJECT\nhold.test HOLD\n"},
		cf: func(c *Config, dir string) {
			c.NoDelayReject = true
			c.HeloRestrictions = []string{"check_helo_access", tbl(dir, "texthash", "access")}
			c.SenderRestrictions = []string{"check_sender_access", tbl(dir, "texthash", "access")}
		},
		steps: []string{banner,
			"C: HELO bad.test", "554 5.7.1 <bad.test>: Helo command rejected: Access denied",
			"C: HELO hold.test", "250 mx.test",
			"C: MAIL FROM:<a@bad.test>", "554 5.7.1 <a@bad.test>: Sender address rejected: Access denied",
			"C: MAIL FROM:<a@ok.test>", "250 2.1.0 Ok",
			"C: RCPT TO:<bob@local.test>", "250 2.1.5 Ok"},
		logs: []string{
			"NOQUEUE: reject: HELO from {name}[127.0.0.1]: 554 5.7.1 <bad.test>: Helo command rejected: Access denied; proto=SMTP helo=<bad.test>",
			"NOQUEUE: reject: MAIL from {name}[127.0.0.1]: 554 5.7.1 <a@bad.test>: Sender address rejected: Access denied; from=<a@bad.test> proto=SMTP helo=<hold.test>",
			"action HOLD is always skipped in Client host or Helo command restrictions",
		},
	}})
}

func TestManagedHashAccessTable(t *testing.T) {
	ctx := context.Background()
	url := testdb.SQLiteURL(t)
	if err := sqlite.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const table = "/etc/sqlmta/sender_access"
	_, err = st.MapImport(ctx, managed.TableName(table), func(yield func(k, v string) error) error {
		for _, kv := range [][2]string{{"spammer.test", "REJECT go away"}, {"friend@spammer.test", "OK"}} {
			if err := yield(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	}, store.MapImportParams{})
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, func(c *Config) {
		untrusted(c)
		c.OpenMap = fileMaps(st)
		c.SenderRestrictions = []string{"check_sender_access", "hash:" + table}
	})
	c := ts.dial(t)
	c.expect(banner)
	c.cmd("HELO c.test", "250 mx.test")
	c.cmd("MAIL FROM:<x@mail.spammer.test>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<bob@local.test>", "554 5.7.1 <x@mail.spammer.test>: Sender address rejected: go away")
	c.cmd("RSET", "250 2.0.0 Ok")
	c.cmd("MAIL FROM:<Friend@Spammer.test>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<bob@local.test>", "250 2.1.5 Ok")
}

func TestDSNHelpers(t *testing.T) {
	for _, tc := range []struct{ status, class, want string }{
		{"5.1.1", classSender, "4.1.7"},
		{"5.1.8", classRecipient, "4.1.2"},
		{"5.1.1", classClient, "4.0.0"},
		{"5.7.1", classSender, "5.7.1"},
		{"5.1.9", classRecipient, "4.1.0"},
	} {
		if got := dsnFix(tc.status, tc.class); got != tc.want {
			t.Errorf("dsnFix(%s, %s) = %s, want %s", tc.status, tc.class, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, dsn, text string }{
		{"5.2.2 full", "5.2.2", "full"},
		{"full", "5.7.1", "full"},
		{"5.2 x", "5.7.1", "5.2 x"},
		{"4.7.1000 x", "5.7.1", "4.7.1000 x"},
	} {
		if d, t2 := dsnSplit("5.7.1", tc.in); d != tc.dsn || t2 != tc.text {
			t.Errorf("dsnSplit(%q) = %q %q", tc.in, d, t2)
		}
	}
	for in, want := range map[string]string{"user+ext@d": "user@d", "user@d": "", "+x@d": "", "postmaster+x@d": "postmaster@d"} {
		if got := stripExtension(in, "+"); got != want {
			t.Errorf("stripExtension(%q) = %q, want %q", in, got, want)
		}
	}
}
