package sqldb

import (
	"context"
	"time"

	"sqlmta/store"
)

// DeadQueries is a dialect's SQL for the dead_destination table. "?" placeholders.
type DeadQueries struct {
	Set    string // transport, nexthop, until, dsn, reason, updated_at: insert or replace
	List   string // → transport, nexthop, until, dsn, reason
	Delete string // transport, nexthop
}

func (s *Store) DeadDestinationSet(ctx context.Context, d store.DeadDestination) error {
	_, err := s.w.ExecContext(ctx, s.d.Dead.Set, d.Transport, d.Nexthop, s.d.Time(store.DBTime(d.Until)), d.DSN,
		d.Reason, s.d.Time(store.DBTime(time.Now())))
	if err != nil {
		return s.errf("dead destination %s:%s: %w", d.Transport, d.Nexthop, err)
	}
	return nil
}

func (s *Store) DeadDestinationList(ctx context.Context) ([]store.DeadDestination, error) {
	rows, err := s.r.QueryContext(ctx, s.d.Dead.List)
	if err != nil {
		return nil, s.errf("dead destinations: %w", err)
	}
	defer rows.Close()
	var out []store.DeadDestination
	for rows.Next() {
		var d store.DeadDestination
		var until dbTime
		if err := rows.Scan(&d.Transport, &d.Nexthop, &until, &d.DSN, &d.Reason); err != nil {
			return nil, s.errf("dead destinations: %w", err)
		}
		d.Until = until.t
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, s.errf("dead destinations: %w", err)
	}
	return out, nil
}

func (s *Store) DeadDestinationDelete(ctx context.Context, transport, nexthop string) error {
	if _, err := s.w.ExecContext(ctx, s.d.Dead.Delete, transport, nexthop); err != nil {
		return s.errf("dead destination %s:%s: %w", transport, nexthop, err)
	}
	return nil
}
