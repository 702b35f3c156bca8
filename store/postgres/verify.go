package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"sqlmta/store"
)

// The address verification cache (migration 00009).
const (
	qVerifyGet   = `SELECT address, status, reason, updated_at, probed_at FROM verify_cache WHERE address = $1`
	qVerifyClaim = `
INSERT INTO verify_cache (address, status, reason, updated_at, probed_at) VALUES ($1, 'todo', '', $2, $2)
ON CONFLICT (address) DO UPDATE SET probed_at = EXCLUDED.probed_at WHERE verify_cache.probed_at < $3`
	qVerifyUpdate = `
INSERT INTO verify_cache (address, status, reason, updated_at, probed_at) VALUES ($1, $2, $3, $4, $4)
ON CONFLICT (address) DO UPDATE SET status = EXCLUDED.status, reason = EXCLUDED.reason, updated_at = EXCLUDED.updated_at`
)

func (s *Store) VerifyGet(ctx context.Context, addr string) (store.VerifyEntry, bool, error) {
	var e store.VerifyEntry
	err := s.pool.QueryRow(ctx, qVerifyGet, strings.ToLower(addr)).Scan(&e.Address, &e.Status, &e.Reason, &e.Updated, &e.Probed)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("postgres: verify %s: %w", addr, err)
	}
	e.Updated, e.Probed = e.Updated.UTC(), e.Probed.UTC()
	return e, true, nil
}

func (s *Store) VerifyProbeClaim(ctx context.Context, addr string, now, since time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, qVerifyClaim, strings.ToLower(addr), store.DBTime(now), store.DBTime(since))
	if err != nil {
		return false, fmt.Errorf("postgres: verify probe %s: %w", addr, err)
	}
	return tag.RowsAffected() > 0, nil
}

func (s *Store) VerifyUpdate(ctx context.Context, addr, status, reason string, now time.Time) error {
	if _, err := s.pool.Exec(ctx, qVerifyUpdate, strings.ToLower(addr), status, reason, store.DBTime(now)); err != nil {
		return fmt.Errorf("postgres: verify %s: %w", addr, err)
	}
	return nil
}
