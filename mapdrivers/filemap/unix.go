package filemap

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"

	"sqlmta/mapdrivers"
)

// Unix is unix:passwd.byname or unix:group.byname: a lookup in the local
// system files. Without cgo there is no getpwnam(3), so it reads
// /etc/passwd and /etc/group (NSS sources other than "files" are not seen).
type Unix struct {
	file string
	// passwd lines are returned as is (name:passwd:uid:gid:gecos:dir:shell,
	// dict_unix's format); group lines as name:passwd:gid:members.
	name string
}

// Files read by unix: tables; variables so tests can point them elsewhere.
var (
	passwdFile = "/etc/passwd"
	groupFile  = "/etc/group"
)

// OpenUnixPasswd opens unix:NAME where NAME is passwd.byname or
// group.byname.
func OpenUnixPasswd(name string) (*Unix, error) {
	switch name {
	case "passwd.byname":
		return &Unix{file: passwdFile, name: name}, nil
	case "group.byname":
		return &Unix{file: groupFile, name: name}, nil
	}
	return nil, fmt.Errorf("unknown table: unix:%s", name)
}

// Lookup implements mapdrivers.Map. The key is lowercased, as Postfix
// does for this fixed-case table.
func (t *Unix) Lookup(ctx context.Context, key string) (string, bool, error) {
	key = strings.ToLower(key)
	if key == "" || strings.ContainsAny(key, ":\n") {
		return "", false, nil
	}
	f, err := os.Open(t.file)
	if err != nil {
		return "", false, fmt.Errorf("unix:%s: %w", t.name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, key+":") {
			// passwd: name:passwd:uid:gid:gecos:dir:shell; group:
			// name:passwd:gid:members — dict_unix's formats.
			return line, true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", false, fmt.Errorf("unix:%s: %w", t.name, err)
	}
	return "", false, nil
}

// Props implements mapdrivers.Map.
func (t *Unix) Props() mapdrivers.Props { return mapdrivers.Props{FoldCase: true} }

// Close implements mapdrivers.Map.
func (t *Unix) Close() error { return nil }
