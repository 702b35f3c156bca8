package mysql

import (
	"sqlmta/store"
	"sqlmta/store/internal/sqldb"
)

var _ store.AdminStore = (*Store)(nil)

// adminQueries lock the rows an admin change reads, so that the change applies to exactly those.
var adminQueries = sqldb.NewAdminQueries(" FOR UPDATE")

// Admin returns the queue administration interface.
func (s *Store) Admin() store.Admin { return sqldb.NewAdmin(s.Store, adminQueries) }
