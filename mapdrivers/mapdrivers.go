// Package mapdrivers is Postfix's lookup-table layer: one interface for every
// map type that main.cf can name as "type:name" — managed tables in sqlmta's
// own database (hash:, btree:, lmdb:, cdb:), the operator's own SQL tables
// (pgsql:, mysql:, sqlite: .cf files), and file and pattern tables (texthash:,
// regexp:, pcre:, cidr:, inline:, static:, unix:, proxy:, fail:).
//
// "Not found" and "error" stay distinct everywhere: a lookup that cannot reach
// its database returns an error, which smtpd answers with 451 4.3.5 and
// cleanup turns into a deferral — never "user unknown".
package mapdrivers

import "context"

// Map is one opened lookup table.
type Map interface {
	// Lookup returns the value stored for key. found is false, with a nil
	// error, when the table has no such key. A non-nil error is a lookup
	// failure (database down, bad query, expansion limit): temporary.
	Lookup(ctx context.Context, key string) (value string, found bool, err error)
	// Props tells callers how the table treats keys (reference §3).
	Props() Props
	Close() error
}

// Props are the properties of a table type that callers act on.
type Props struct {
	// Pattern is true for regexp:, pcre: and cidr: tables: they see only
	// the full key of a lookup sequence, never the derived partial keys
	// (parent domains, user@, …), and keys are not case-folded for them.
	Pattern bool
	// FoldCase is true when keys are lowercased before lookup (fixed-string
	// tables: hash, SQL, texthash, inline, …).
	FoldCase bool
}
