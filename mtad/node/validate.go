package node

import (
	"context"
	"fmt"
	"slices"

	"sqlmta/config"
	mapopen "sqlmta/mapdrivers/open"
	"sqlmta/mtad/rewrite"
)

// recipientValidator is what reject_unlisted_recipient and
// reject_unlisted_sender ask: the recipient tables of main.cf, opened
// through the node's opener at each check (the opener shares one instance
// per table), so that a table that cannot be opened answers 4xx for that
// RCPT instead of stopping the node. nil when receive_override_options
// turns the check off.
func recipientValidator(cfg *config.Config, res *rewrite.Resolver, maps *mapopen.Opener) func(context.Context, string, bool) (rewrite.Validity, error) {
	if slices.Contains(cfg.List("receive_override_options"), "no_unknown_recipient_checks") {
		return nil
	}
	specs := map[string][]string{}
	for _, p := range []string{"canonical_maps", "recipient_canonical_maps", "sender_canonical_maps",
		"virtual_alias_maps", "local_recipient_maps", "virtual_mailbox_maps", "relay_recipient_maps", "relocated_maps"} {
		specs[p] = cfg.List(p)
	}
	if slices.Contains(cfg.List("receive_override_options"), "no_address_mappings") {
		// Canonical and virtual alias maps do not apply, so they vouch for nothing.
		for _, p := range []string{"canonical_maps", "recipient_canonical_maps", "sender_canonical_maps", "virtual_alias_maps"} {
			specs[p] = nil
		}
	}
	delim, doubleBounce := cfg.Get("recipient_delimiter"), cfg.Get("double_bounce_sender")
	return func(ctx context.Context, addr string, sender bool) (rewrite.Validity, error) {
		open := func(param string) (*rewrite.Tables, error) {
			if len(specs[param]) == 0 {
				return nil, nil
			}
			t := &rewrite.Tables{Title: param}
			for _, spec := range specs[param] {
				m, err := maps.Open(ctx, spec)
				if err != nil {
					return nil, err
				}
				t.Maps = append(t.Maps, m)
			}
			return t, nil
		}
		var err error
		t := &rewrite.RecipientTables{Delimiter: delim, DoubleBounce: doubleBounce}
		for _, f := range []struct {
			param string
			dst   **rewrite.Tables
		}{
			{"canonical_maps", &t.Canonical}, {"recipient_canonical_maps", &t.RecipientCanonical},
			{"sender_canonical_maps", &t.SenderCanonical}, {"virtual_alias_maps", &t.VirtualAlias},
			{"local_recipient_maps", &t.LocalRecipient}, {"virtual_mailbox_maps", &t.VirtualMailbox},
			{"relay_recipient_maps", &t.RelayRecipient}, {"relocated_maps", &t.Relocated},
		} {
			if *f.dst, err = open(f.param); err != nil {
				return rewrite.Validity{}, err
			}
		}
		return res.Validate(ctx, t, addr, sender)
	}
}

// checkDefaultRecipientMaps probes local_recipient_maps when only its
// default (proxy:unix:passwd.byname $alias_maps) names it and there are
// local domains: mapopen.Check skips defaults, but this one answers every
// local RCPT, and a missing newaliases would otherwise first show as 451s.
func checkDefaultRecipientMaps(ctx context.Context, o *mapopen.Opener, cfg *config.Config) []error {
	if slices.Contains(cfg.Explicit(), "local_recipient_maps") || len(cfg.List("mydestination")) == 0 {
		return nil
	}
	var errs []error
	for _, spec := range cfg.List("local_recipient_maps") {
		m, err := o.Open(ctx, spec)
		if err == nil {
			_, _, err = m.Lookup(ctx, "sqlmta-check")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("local_recipient_maps: %s: %w", spec, err))
		}
	}
	return errs
}
