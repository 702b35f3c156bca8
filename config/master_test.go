package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const sampleMaster = `#
# Postfix master process configuration file.
# ==========================================================================
# service type  private unpriv  chroot  wakeup  maxproc command + args
#               (yes)   (yes)   (no)    (never) (100)
# ==========================================================================
smtp      inet  n       -       y       -       -       smtpd
#smtp      inet  n       -       y       -       1       postscreen
127.0.0.1:2525 inet n  -       n       -       10      smtpd
  -o { smtpd_banner = $myhostname  test server }
  # an indented comment inside the entry
  -o { smtpd_client_restrictions = permit_mynetworks, reject }
  -o syslog_name=postfix/2525
[::1]:25  inet  n       -       n       -       -       smtpd -v -osmtpd_tls_security_level=none
submission inet n       -       y       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
pickup    unix  n       -       y       60      1       pickup
cleanup   unix  n       -       y       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
2526      inet  n       -       n       -       0       smtpd
relay     unix  -       -       y       -       -       smtp
        -o syslog_name=postfix/$service_name
smtpsvc   inet  n       -       n       -       -       postscreen
maildrop  unix  -       n       n       -       -       pipe
  flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}
`

func TestParseMaster(t *testing.T) {
	svcs, err := ParseMaster("master.cf", strings.NewReader(sampleMaster))
	if err != nil {
		t.Fatal(err)
	}
	want := []Service{
		{Name: "smtp", Listen: ":25", Overrides: map[string]string{}, MaxProc: -1, File: "master.cf", Line: 7},
		{Name: "127.0.0.1:2525", Listen: "127.0.0.1:2525", Overrides: map[string]string{
			"smtpd_banner":              "$myhostname  test server",
			"smtpd_client_restrictions": "permit_mynetworks, reject",
			"syslog_name":               "postfix/2525",
		}, MaxProc: 10, File: "master.cf", Line: 9},
		{Name: "[::1]:25", Listen: "[::1]:25", Overrides: map[string]string{"smtpd_tls_security_level": "none"}, MaxProc: -1, File: "master.cf", Line: 14},
		{Name: "submission", Listen: ":587", Overrides: map[string]string{
			"syslog_name":              "postfix/submission",
			"smtpd_tls_security_level": "encrypt",
			"smtpd_sasl_auth_enable":   "yes",
		}, MaxProc: -1, File: "master.cf", Line: 15},
		{Name: "2526", Listen: ":2526", Overrides: map[string]string{}, MaxProc: 0, File: "master.cf", Line: 22},
	}
	if !reflect.DeepEqual(svcs, want) {
		t.Errorf("services:\n got %+v\nwant %+v", svcs, want)
	}
}

func TestMasterOverridesApply(t *testing.T) {
	svcs, err := ParseMaster("master.cf", strings.NewReader(sampleMaster))
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, "myhostname = mx.example.com\n")
	sub := c.With(svcs[3].Overrides)
	if on, err := sub.Bool("smtpd_sasl_auth_enable"); err != nil || !on {
		t.Errorf("submission smtpd_sasl_auth_enable = %v, %v", on, err)
	}
	if off, _ := c.Bool("smtpd_sasl_auth_enable"); off {
		t.Error("override leaked into the main config")
	}
	if got := c.With(svcs[1].Overrides).List("smtpd_client_restrictions"); !reflect.DeepEqual(got, []string{"permit_mynetworks", "reject"}) {
		t.Errorf("braced -o value = %q", got)
	}
}

func TestMasterErrors(t *testing.T) {
	cases := []struct {
		text, msg string
		line      int
	}{
		{"# c\nsmtp inet n - y - -\n", "expected at least 8 fields", 2},
		{"smtp tcp n - y - - smtpd\n", "bad transport type: tcp", 1},
		{"x unix n - y - - a\nsmtp inet maybe - y - - smtpd\n", `field "private": bad value: "maybe"`, 2},
		{"smtp inet n - y never - smtpd\n", `field "wakeup"`, 1},
		{"smtp inet n - y 60? x smtpd\n", `field "maxproc"`, 1},
		{"smtp inet n - y - -1 smtpd\n", `field "maxproc": bad value: "-1"`, 1},
		{"smtp inet n - y - 99999999999999999999 smtpd\n", `field "maxproc"`, 1},
		{"smtp inet n - y - - smtpd -o\n", "option -o requires", 1},
		{"smtp inet n - y - - smtpd\n  -o novalue\n", `bad -o option: "novalue"`, 1},
		{"smtp inet n - y - - smtpd -o {a = b\n", "missing '}'", 1},
		{"nosuchservice_xyz inet n - y - - smtpd\n", "unknown service name", 1},
		{"1.2.3.4: inet n - y - - smtpd\n", "no port", 1},
		{"99999 inet n - y - - smtpd\n", "bad port number", 1},
		{"[::1:25 inet n - y - - smtpd\n", "bad inet service address", 1},
	}
	for _, tc := range cases {
		_, err := ParseMaster("/etc/sqlmta/master.cf", strings.NewReader(tc.text))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%q: error %v is not a *ParseError", tc.text, err)
			continue
		}
		if pe.File != "/etc/sqlmta/master.cf" || pe.Line != tc.line || !strings.Contains(pe.Msg, tc.msg) {
			t.Errorf("%q: got %v, want line %d and %q", tc.text, err, tc.line, tc.msg)
		}
	}
	// Non-smtpd lines are checked too, then skipped.
	if svcs, err := ParseMaster("m", strings.NewReader("pickup unix n - y 60 1 pickup\n")); err != nil || svcs != nil {
		t.Errorf("pickup only: %v, %v", svcs, err)
	}
}

func TestLoadMaster(t *testing.T) {
	dir := t.TempDir()
	svcs, err := LoadMaster(dir)
	if err != nil || svcs != nil {
		t.Fatalf("missing master.cf: %v, %v", svcs, err)
	}
	path := filepath.Join(dir, "master.cf")
	if err := os.WriteFile(path, []byte("smtps inet n - n - - smtpd\n  -o smtpd_tls_wrappermode=yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	svcs, err = LoadMaster(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 || svcs[0].Listen != ":465" || svcs[0].File != path || svcs[0].Overrides["smtpd_tls_wrappermode"] != "yes" {
		t.Errorf("LoadMaster = %+v", svcs)
	}
}

// Debian's stock master.cf must parse and give just the smtp service.
func TestStockMasterCF(t *testing.T) {
	const stock = "/usr/share/postfix/master.cf.dist"
	data, err := os.ReadFile(stock)
	if err != nil {
		t.Skipf("%s not installed", stock)
	}
	svcs, err := ParseMaster(stock, strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 || svcs[0].Listen != ":25" {
		t.Errorf("stock master.cf services = %+v", svcs)
	}
}
