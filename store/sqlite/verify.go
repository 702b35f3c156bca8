package sqlite

import "sqlmta/store/internal/sqldb"

// verifyQueries keep the address verification cache (migration 00009).
var verifyQueries = sqldb.VerifyQueries{
	Get: `SELECT address, status, reason, updated_at, probed_at FROM verify_cache WHERE address = ?`,
	Claim: `
INSERT INTO verify_cache (address, status, reason, updated_at, probed_at) VALUES (?, 'todo', '', ?, ?)
ON CONFLICT (address) DO UPDATE SET probed_at = excluded.probed_at WHERE verify_cache.probed_at < ?`,
	Update: `
INSERT INTO verify_cache (address, status, reason, updated_at, probed_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (address) DO UPDATE SET status = excluded.status, reason = excluded.reason, updated_at = excluded.updated_at`,
}
