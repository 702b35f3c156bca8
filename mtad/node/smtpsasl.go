package node

import (
	"errors"
	"fmt"
	"strings"

	"sqlmta/config"
	"sqlmta/mtad/rewrite"
	smtptransport "sqlmta/mtad/transport/smtp"
)

// smtpSASL reads the smtp_sasl_* parameters: SMTP AUTH of the smtp and
// relay transports towards a smarthost. A setting Postfix would refuse
// to run with stops the node too, since mail relayed without the AUTH the
// admin asked for would be refused and bounce.
func (n *Node) smtpSASL(cfg *config.Config, res *rewrite.Resolver, errs *[]error) smtptransport.SASLConfig {
	var c smtptransport.SASLConfig
	boolean := func(name string) bool {
		v, err := cfg.Bool(name)
		*errs = append(*errs, err)
		return v
	}
	if c.Enable = boolean("smtp_sasl_auth_enable"); !c.Enable {
		return c
	}
	// The mechanisms are built in; "cyrus", Postfix's default, is the
	// only type whose client side Postfix has too.
	if t := cfg.Get("smtp_sasl_type"); t != "cyrus" {
		*errs = append(*errs, fmt.Errorf("smtp_sasl_type = %s: unsupported SASL client implementation; leave it at cyrus (PLAIN, LOGIN and CRAM-MD5 are built in)", t))
	}
	specs := cfg.List("smtp_sasl_password_maps")
	if len(specs) == 0 {
		*errs = append(*errs, errors.New("smtp_sasl_auth_enable = yes: specify a password table via the `smtp_sasl_password_maps' configuration parameter"))
	}
	c.Passwords = &smtptransport.TablePasswords{
		Specs:       specs,
		Open:        n.maps.Open,
		Delimiter:   cfg.Get("recipient_delimiter"),
		LocalDomain: res.LocalpartLookup,
	}
	c.SenderDependent = boolean("smtp_sender_dependent_authentication")
	c.HardBounce = !boolean("smtp_sasl_auth_soft_bounce")
	// A non-nil list, even an empty one, is the admin's choice: empty
	// allows every mechanism.
	options := func(name string) []string {
		opts := append([]string{}, cfg.List(name)...)
		if err := smtptransport.CheckSASLSecurityOptions(opts); err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", name, err))
		}
		return opts
	}
	c.SecurityOptions = options("smtp_sasl_security_options")
	c.TLSSecurityOptions = options("smtp_sasl_tls_security_options")
	for _, f := range cfg.List("smtp_sasl_mechanism_filter") {
		if typ, _, ok := strings.Cut(strings.TrimPrefix(f, "!"), ":"); ok && typ != "static" || strings.HasPrefix(strings.TrimPrefix(f, "!"), "/") {
			n.log.Printf("smtp", "warning: smtp_sasl_mechanism_filter: table %s is not supported; entry ignored", f)
			continue
		}
		c.MechanismFilter = append(c.MechanismFilter, f)
	}
	if cfg.Get("smtp_sasl_auth_cache_name") != "" {
		n.log.Printf("smtp", "warning: smtp_sasl_auth_cache_name is not implemented; every delivery tries AUTH anew")
	}
	return c
}
