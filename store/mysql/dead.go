package mysql

import "sqlmta/store/internal/sqldb"

// deadQueries keep the dead-destination marks (migration 00005).
var deadQueries = sqldb.DeadQueries{
	Set: `
INSERT INTO dead_destination (transport, nexthop, until_at, dsn, reason, updated_at)
VALUES (?, ?, ?, ?, ?, ?)
ON DUPLICATE KEY UPDATE
    until_at = VALUES(until_at), dsn = VALUES(dsn), reason = VALUES(reason), updated_at = VALUES(updated_at)`,
	List:   `SELECT transport, nexthop, until_at, dsn, reason FROM dead_destination ORDER BY transport, nexthop`,
	Delete: `DELETE FROM dead_destination WHERE transport = ? AND nexthop = ?`,
}
