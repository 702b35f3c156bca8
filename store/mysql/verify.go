package mysql

import "sqlmta/store/internal/sqldb"

// verifyQueries keep the address verification cache (migration 00009). An ON DUPLICATE KEY UPDATE that
// changes nothing reports 0 rows: the probe claim was lost.
var verifyQueries = sqldb.VerifyQueries{
	Get: `SELECT address, status, reason, updated_at, probed_at FROM verify_cache WHERE address = ?`,
	Claim: `
INSERT INTO verify_cache (address, status, reason, updated_at, probed_at) VALUES (?, 'todo', '', ?, ?)
ON DUPLICATE KEY UPDATE probed_at = IF(probed_at < ?, VALUES(probed_at), probed_at)`,
	Update: `
INSERT INTO verify_cache (address, status, reason, updated_at, probed_at) VALUES (?, ?, ?, ?, ?)
ON DUPLICATE KEY UPDATE status = VALUES(status), reason = VALUES(reason), updated_at = VALUES(updated_at)`,
}
