package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"sqlmta/store"
)

// VerifyQueries keep the address verification cache (migration 00009).
type VerifyQueries struct {
	Get    string // address → address, status, reason, updated_at, probed_at
	Claim  string // address, now, now, since: insert a todo entry or move probed_at; 1 row (MySQL: 1 or 2) when done
	Update string // address, status, reason, now, now: insert or replace status, reason, updated_at
}

func (s *Store) VerifyGet(ctx context.Context, addr string) (store.VerifyEntry, bool, error) {
	var e store.VerifyEntry
	var updated, probed dbTime
	err := s.r.QueryRowContext(ctx, s.d.Verify.Get, strings.ToLower(addr)).Scan(&e.Address, &e.Status, &e.Reason, &updated, &probed)
	if errors.Is(err, sql.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, s.errf("verify %s: %w", addr, err)
	}
	e.Updated, e.Probed = updated.t, probed.t
	return e, true, nil
}

func (s *Store) VerifyProbeClaim(ctx context.Context, addr string, now, since time.Time) (bool, error) {
	n := s.d.Time(store.DBTime(now))
	res, err := s.w.ExecContext(ctx, s.d.Verify.Claim, strings.ToLower(addr), n, n, s.d.Time(store.DBTime(since)))
	if err != nil {
		return false, s.errf("verify probe %s: %w", addr, err)
	}
	rows, err := res.RowsAffected()
	if err != nil {
		return false, s.errf("verify probe %s: %w", addr, err)
	}
	return rows > 0, nil
}

func (s *Store) VerifyUpdate(ctx context.Context, addr, status, reason string, now time.Time) error {
	n := s.d.Time(store.DBTime(now))
	if _, err := s.w.ExecContext(ctx, s.d.Verify.Update, strings.ToLower(addr), status, reason, n, n); err != nil {
		return s.errf("verify %s: %w", addr, err)
	}
	return nil
}
