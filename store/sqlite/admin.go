package sqlite

import (
	"sqlmta/store"
	"sqlmta/store/internal/sqldb"
)

var _ store.AdminStore = (*Store)(nil)

// adminQueries need no locking clause: every write transaction already holds SQLite's one write lock.
var adminQueries = sqldb.NewAdminQueries("")

// Admin returns the queue administration interface.
func (s *Store) Admin() store.Admin { return sqldb.NewAdmin(s.Store, adminQueries) }
