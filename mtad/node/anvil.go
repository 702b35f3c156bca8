package node

import (
	"errors"
	"fmt"

	"sqlmta/config"
	"sqlmta/mtad/matchlist"
	"sqlmta/mtad/smtpd"
)

// smtpdAnvil reads the client rate and concurrency limits (Postfix's
// anvil): smtpd_client_connection_count_limit is 50 by default, the
// rates are off, and smtpd_client_event_limit_exceptions ($mynetworks by
// default) are never limited.
func smtpdAnvil(cfg *config.Config) (smtpd.AnvilConfig, error) {
	var a smtpd.AnvilConfig
	var errs []error
	limit := func(name string) int {
		v, err := cfg.Int(name)
		errs = append(errs, err)
		return v
	}
	a.ConnectionCount = limit("smtpd_client_connection_count_limit")
	a.ConnectionRate = limit("smtpd_client_connection_rate_limit")
	a.MessageRate = limit("smtpd_client_message_rate_limit")
	a.RecipientRate = limit("smtpd_client_recipient_rate_limit")
	a.AuthRate = limit("smtpd_client_auth_rate_limit")
	var err error
	a.RateTimeUnit, err = cfg.Duration("anvil_rate_time_unit")
	errs = append(errs, err)
	ex, err := matchlist.ParseNetworks(cfg.List("smtpd_client_event_limit_exceptions"))
	if err != nil {
		errs = append(errs, fmt.Errorf("smtpd_client_event_limit_exceptions: %w", err))
	} else {
		a.Exceptions = ex
	}
	return a, errors.Join(errs...)
}
