package node

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"sqlmta/config"
	mapopen "sqlmta/mapdrivers/open"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/rewrite"
	smtptransport "sqlmta/mtad/transport/smtp"
)

// TestSMTPSASLConfig: main.cf's smtp_sasl_* lines as the smtp transport
// gets them, and the settings Postfix would refuse to run with.
func TestSMTPSASLConfig(t *testing.T) {
	read := func(mainCf string) (smtptransport.SASLConfig, string, error) {
		t.Helper()
		cfg, err := config.Parse("main.cf", strings.NewReader(mainCf))
		if err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		n := &Node{log: maillog.New(&log, "mx.test", "postfix"), maps: &mapopen.Opener{}}
		var errs []error
		c := n.smtpSASL(cfg, &rewrite.Resolver{}, &errs)
		return c, log.String(), errors.Join(errs...)
	}

	if c, _, err := read("smtp_sasl_password_maps = hash:/etc/postfix/sasl_passwd\n"); err != nil || c.Enable || c.Passwords != nil {
		t.Errorf("AUTH off by default: %+v %v", c, err)
	}

	c, log, err := read("smtp_sasl_auth_enable = yes\nsmtp_sasl_password_maps = hash:/etc/postfix/sasl_passwd\n" +
		"smtp_sasl_mechanism_filter = !gssapi, pcre:/etc/postfix/mechs, static:rest\n")
	if err != nil {
		t.Fatal(err)
	}
	// Postfix's defaults, spelled out: the TLS options follow the others.
	if !c.Enable || c.SenderDependent || c.HardBounce ||
		!slices.Equal(c.SecurityOptions, []string{"noplaintext", "noanonymous"}) ||
		!slices.Equal(c.TLSSecurityOptions, c.SecurityOptions) ||
		!slices.Equal(c.MechanismFilter, []string{"!gssapi", "static:rest"}) {
		t.Errorf("%+v", c)
	}
	if tp, ok := c.Passwords.(*smtptransport.TablePasswords); !ok || !slices.Equal(tp.Specs, []string{"hash:/etc/postfix/sasl_passwd"}) {
		t.Errorf("passwords %+v", c.Passwords)
	}
	if !strings.Contains(log, "warning: smtp_sasl_mechanism_filter: table pcre:/etc/postfix/mechs is not supported") {
		t.Errorf("log:\n%s", log)
	}

	// An empty value allows every mechanism: not the default.
	c, _, err = read("smtp_sasl_auth_enable = yes\nsmtp_sasl_password_maps = hash:/x\nsmtp_sasl_security_options =\n" +
		"smtp_sasl_tls_security_options = noanonymous\nsmtp_sender_dependent_authentication = yes\nsmtp_sasl_auth_soft_bounce = no\n")
	if err != nil || c.SecurityOptions == nil || len(c.SecurityOptions) != 0 ||
		!slices.Equal(c.TLSSecurityOptions, []string{"noanonymous"}) || !c.SenderDependent || !c.HardBounce {
		t.Errorf("%+v %v", c, err)
	}

	for _, tc := range []struct{ mainCf, want string }{
		{"smtp_sasl_auth_enable = yes\n", "specify a password table via the `smtp_sasl_password_maps' configuration parameter"},
		{"smtp_sasl_auth_enable = yes\nsmtp_sasl_password_maps = hash:/x\nsmtp_sasl_security_options = noanonymous, noplain\n",
			`smtp_sasl_security_options: unknown SASL security option "noplain"`},
		{"smtp_sasl_auth_enable = yes\nsmtp_sasl_password_maps = hash:/x\nsmtp_sasl_type = dovecot\n",
			"smtp_sasl_type = dovecot: unsupported SASL client implementation"},
		{"smtp_sasl_auth_enable = maybe\n", "bad boolean configuration: smtp_sasl_auth_enable = maybe"},
	} {
		if _, _, err := read(tc.mainCf); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.mainCf, err, tc.want)
		}
	}
}
