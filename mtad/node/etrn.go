package node

import (
	"context"
	"fmt"
	"slices"

	"sqlmta/config"
	mapopen "sqlmta/mapdrivers/open"
	"sqlmta/mtad/matchlist"
	"sqlmta/store"
)

// etrnFlush is smtpd's ETRN: a domain in fast_flush_domains has its queued
// and deferred mail made due now, in the whole database (so whichever node
// is free delivers it; PostgreSQL nodes are woken by the store's NOTIFY).
func etrnFlush(cfg *config.Config, st store.Store, maps *mapopen.Opener) (func(context.Context, string) (bool, error), error) {
	admin, ok := st.(store.AdminStore)
	if !ok {
		return nil, nil
	}
	sub := slices.Contains(cfg.List("parent_domain_matches_subdomains"), "fast_flush_domains")
	domains, err := matchlist.ParseDomainsTables(context.Background(), cfg.List("fast_flush_domains"), sub, maps.Open)
	if err != nil {
		return nil, fmt.Errorf("fast_flush_domains: %w", err)
	}
	return func(ctx context.Context, domain string) (bool, error) {
		ok, err := domains.Match(ctx, domain)
		if err != nil || !ok {
			return false, err
		}
		_, err = admin.Admin().RecipientsFlush(ctx, store.FlushParams{Site: domain})
		return true, err
	}, nil
}
