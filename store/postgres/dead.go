package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"sqlmta/store"
)

// The dead-destination marks (migration 00005).
const (
	qDeadSet = `
INSERT INTO dead_destination (transport, nexthop, until_at, dsn, reason, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (transport, nexthop) DO UPDATE
SET until_at = excluded.until_at, dsn = excluded.dsn, reason = excluded.reason, updated_at = excluded.updated_at`
	qDeadList   = `SELECT transport, nexthop, until_at, dsn, reason FROM dead_destination ORDER BY transport, nexthop`
	qDeadDelete = `DELETE FROM dead_destination WHERE transport = $1 AND nexthop = $2`
)

func (s *Store) DeadDestinationSet(ctx context.Context, d store.DeadDestination) error {
	_, err := s.pool.Exec(ctx, qDeadSet, d.Transport, d.Nexthop, store.DBTime(d.Until), d.DSN, d.Reason,
		store.DBTime(time.Now()))
	if err != nil {
		return fmt.Errorf("postgres: dead destination %s:%s: %w", d.Transport, d.Nexthop, err)
	}
	return nil
}

func (s *Store) DeadDestinationList(ctx context.Context) ([]store.DeadDestination, error) {
	rows, err := s.pool.Query(ctx, qDeadList)
	if err != nil {
		return nil, fmt.Errorf("postgres: dead destinations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.DeadDestination, error) {
		var d store.DeadDestination
		err := row.Scan(&d.Transport, &d.Nexthop, &d.Until, &d.DSN, &d.Reason)
		d.Until = d.Until.UTC()
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: dead destinations: %w", err)
	}
	return out, nil
}

func (s *Store) DeadDestinationDelete(ctx context.Context, transport, nexthop string) error {
	if _, err := s.pool.Exec(ctx, qDeadDelete, transport, nexthop); err != nil {
		return fmt.Errorf("postgres: dead destination %s:%s: %w", transport, nexthop, err)
	}
	return nil
}
