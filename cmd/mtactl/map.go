package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"sqlmta/config"
	"sqlmta/mapdrivers"
	"sqlmta/mapdrivers/managed"
	"sqlmta/mapdrivers/mapfile"
	mapopen "sqlmta/mapdrivers/open"
	"sqlmta/store"
	"sqlmta/store/open"
)

// postmap's modes.
const (
	modeImport = iota
	modeQuery
	modeDelete
	modeDump
)

// postmapOpts is one postmap(1) invocation.
type postmapOpts struct {
	prog        string // "postmap" or "mtactl map": prefixes messages
	dir         string // configuration directory (-c)
	mode        int
	key         string    // -q / -d argument; "-" reads keys from stdin
	stdin       io.Reader // where `-q -`, `-d -` and `-i` read keys and entries
	noFold      bool      // -f
	replace     bool      // -r: later duplicates replace earlier ones
	quiet       bool      // -w: duplicates silently ignored
	incremental bool      // -i
	maps        []string
	aliases     bool // newaliases: aliases(5) syntax
}

const mapUsage = `usage: mtactl map import [-f] [-r] [-w] [-i] [type:]file ...
       mtactl map query [-f] key|- [type:]file ...
       mtactl map delete [-f] key|- [type:]file ...
       mtactl map dump [-f] [type:]file ...
       mtactl map list
       mtactl map check
`

// mapMain is `mtactl map …`; it returns the exit status, postmap's where postmap has one.
func mapMain(dir string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mapUsage)
		return 2
	}
	o := postmapOpts{prog: "mtactl map", dir: dir, stdin: stdin}
	sub, args := args[0], args[1:]
	flags := "frwi"
	switch sub {
	case "import":
		o.mode = modeImport
	case "query":
		o.mode, flags = modeQuery, "f"
	case "delete":
		o.mode, flags = modeDelete, "f"
	case "dump":
		o.mode, flags = modeDump, "f"
	case "list":
		if len(args) != 0 {
			fmt.Fprint(stderr, mapUsage)
			return 2
		}
		return mapList(dir, stdout, stderr)
	case "check":
		if len(args) != 0 {
			fmt.Fprint(stderr, mapUsage)
			return 2
		}
		return mapCheck(dir, stdout, stderr)
	default:
		fmt.Fprint(stderr, mapUsage)
		return 2
	}
	rest, err := getopt(args, flags, func(c byte, _ string) {
		switch c {
		case 'f':
			o.noFold = true
		case 'r':
			o.replace = true
		case 'w':
			o.quiet = true
		case 'i':
			o.incremental = true
		}
	})
	if err == nil && (o.mode == modeQuery || o.mode == modeDelete) {
		if len(rest) == 0 {
			err = errors.New("missing key")
		} else {
			o.key, rest = rest[0], rest[1:]
		}
	}
	if err != nil || len(rest) == 0 {
		if err != nil {
			fmt.Fprintf(stderr, "mtactl map %s: %v\n", sub, err)
		}
		fmt.Fprint(stderr, mapUsage)
		return 2
	}
	o.maps = rest
	return o.run(stdout, stderr)
}

// postmapMain is mtactl called as postmap: Postfix's flags, [type:]file arguments, default type hash.
func postmapMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o := postmapOpts{prog: "postmap", dir: defaultConfigDir(), stdin: stdin}
	var modes int
	rest, err := getopt(args, "Nbc:d:fhimnopq:rsuvwx", func(c byte, arg string) {
		switch c {
		case 'c':
			o.dir = arg
		case 'd':
			o.mode, o.key = modeDelete, arg
			modes++
		case 'q':
			o.mode, o.key = modeQuery, arg
			modes++
		case 's':
			o.mode = modeDump
			modes++
		case 'f':
			o.noFold = true
		case 'i':
			o.incremental = true
		case 'r':
			o.replace = true
		case 'w':
			o.quiet = true
		}
		// -N -b -h -m -n -o -p -u -v -x change nothing for a table in SQL.
	})
	if err == nil && modes > 1 {
		err = errors.New("specify only one of -s -q or -d")
	}
	if err == nil && len(rest) == 0 {
		err = errors.New("usage: postmap [-Nfinoprsuvw] [-c config_dir] [-d key] [-q key] [map_type:]file...")
	}
	if err != nil {
		fmt.Fprintf(stderr, "postmap: fatal: %v\n", err)
		return 1
	}
	o.maps = rest
	return o.run(stdout, stderr)
}

// getopt parses POSIX short options as Postfix's tools do: clustered flags (-fq key), an option argument
// attached or separate, "--" ending the options. spec lists the letters; "x:" takes an argument.
func getopt(args []string, spec string, fn func(c byte, arg string)) ([]string, error) {
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			return args[1:], nil
		}
		if len(a) < 2 || a[0] != '-' {
			return args, nil
		}
		args = args[1:]
		for i := 1; i < len(a); i++ {
			c := a[i]
			j := strings.IndexByte(spec, c)
			if j < 0 || c == ':' {
				return nil, fmt.Errorf("invalid option -- '%c'", c)
			}
			if j+1 < len(spec) && spec[j+1] == ':' {
				arg := a[i+1:]
				if arg == "" {
					if len(args) == 0 {
						return nil, fmt.Errorf("option requires an argument -- '%c'", c)
					}
					arg, args = args[0], args[1:]
				}
				fn(c, arg)
				break
			}
			fn(c, "")
		}
	}
	return args, nil
}

// fatal reports err the way postmap does and returns its exit status.
func (o *postmapOpts) fatal(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "%s: fatal: %v\n", o.prog, err)
	return 1
}

func (o *postmapOpts) warn(stderr io.Writer, format string, args ...any) {
	fmt.Fprintf(stderr, "%s: warning: "+format+"\n", append([]any{o.prog}, args...)...)
}

// mapRef splits [type:]file. Only managed types can be written; any table
// type can be queried (anyType).
func mapRef(ref string, anyType bool) (typ, file string, err error) {
	typ, file, ok := strings.Cut(ref, ":")
	if !ok {
		typ, file = "hash", ref
	}
	if anyType && mapopen.IsMapType(typ) {
		return typ, file, nil
	}
	if !managed.IsType(typ) {
		return "", "", fmt.Errorf("unsupported map type for this command: %s (want one of %s)", typ, strings.Join(managed.Types, ", "))
	}
	if file == "" {
		return "", "", fmt.Errorf("%s: no file name", ref)
	}
	return typ, file, nil
}

// openMaps loads the configuration, applies pending migrations (the map tables may be new) and opens the
// store named by database_url.
func openMaps(ctx context.Context, dir string) (store.MapStore, func(), error) {
	st, err := openStore(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	ms, ok := st.(store.MapStore)
	if !ok {
		st.Close()
		return nil, nil, fmt.Errorf("%s store keeps no lookup tables", st.Dialect())
	}
	return ms, func() { st.Close() }, nil
}

// openStore opens (and migrates) the database of the configuration in dir.
func openStore(ctx context.Context, dir string) (store.Store, error) {
	cfg, err := config.Load(dir)
	if err != nil {
		return nil, err
	}
	url := cfg.Get("database_url")
	if err := ensureDataDir(cfg); err != nil {
		return nil, err
	}
	if err := open.Migrate(ctx, url); err != nil {
		return nil, err
	}
	return open.Open(ctx, url)
}

func (o *postmapOpts) fold(key string) string {
	if o.noFold {
		return key
	}
	return mapfile.Fold(key)
}

func (o *postmapOpts) run(stdout, stderr io.Writer) int {
	type ref struct{ typ, file string }
	refs := make([]ref, len(o.maps))
	for i, m := range o.maps {
		typ, file, err := mapRef(m, o.mode == modeQuery)
		if err != nil {
			return o.fatal(stderr, err)
		}
		refs[i] = ref{typ, file}
	}
	ctx := context.Background()
	ms, closeStore, err := openMaps(ctx, o.dir)
	if err != nil {
		return o.fatal(stderr, err)
	}
	defer closeStore()

	switch o.mode {
	case modeQuery, modeDelete:
		keys := []string{o.key}
		fromStdin := o.key == "-"
		if fromStdin {
			keys = nil
			sc := bufio.NewScanner(o.stdin)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				if k := strings.TrimSpace(sc.Text()); k != "" {
					keys = append(keys, k)
				}
			}
			if err := sc.Err(); err != nil {
				return o.fatal(stderr, err)
			}
		}
		hit := false
		var tables []mapdrivers.Map
		if o.mode == modeQuery {
			st, _ := ms.(store.Store)
			opener := &mapopen.Opener{Store: st, Warnf: func(f string, a ...any) { o.warn(stderr, f, a...) }}
			defer opener.Close()
			for _, r := range refs {
				m, err := opener.Open(ctx, r.typ+":"+r.file)
				if err != nil {
					return o.fatal(stderr, err)
				}
				tables = append(tables, m)
			}
		}
		for _, k := range keys {
			for i, r := range refs {
				if o.mode == modeDelete {
					ok, err := ms.MapDelete(ctx, managed.TableName(r.file), o.fold(k))
					if err != nil {
						return o.fatal(stderr, o.tableErr(r.typ, r.file, err))
					}
					hit = hit || ok
					continue
				}
				// Pattern tables (regexp, pcre, cidr) see the key as given.
				qk := k
				if tables[i].Props().FoldCase {
					qk = o.fold(k)
				}
				v, found, err := tables[i].Lookup(ctx, qk)
				if err != nil {
					return o.fatal(stderr, o.tableErr(r.typ, r.file, err))
				}
				if found {
					hit = true
					// postmap -q - prints "key<TAB>value", the key as it was given.
					if fromStdin {
						fmt.Fprintf(stdout, "%s\t%s\n", k, v)
					} else {
						fmt.Fprintln(stdout, v)
					}
					break
				}
			}
		}
		if !hit {
			return 1
		}
		return 0
	case modeDump:
		w := bufio.NewWriter(stdout)
		for _, r := range refs {
			err := ms.MapList(ctx, managed.TableName(r.file), func(k, v string) error {
				_, err := fmt.Fprintf(w, "%s\t%s\n", k, v)
				return err
			})
			if err != nil {
				w.Flush()
				return o.fatal(stderr, o.tableErr(r.typ, r.file, err))
			}
		}
		if err := w.Flush(); err != nil {
			return o.fatal(stderr, err)
		}
		return 0
	}

	for _, r := range refs {
		var err error
		if o.incremental {
			err = o.put(ctx, ms, r.file, o.stdin, stderr)
		} else {
			err = o.importFile(ctx, ms, r.file, stderr)
		}
		if err != nil {
			return o.fatal(stderr, err)
		}
	}
	return 0
}

// tableErr words a missing table as postmap does.
func (o *postmapOpts) tableErr(typ, file string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("open database %s:%s: no such table in the database (import it with postmap first)", typ, managed.TableName(file))
	}
	return err
}

// parse streams the entries of src (named name) to fn: map syntax, or aliases(5) syntax for newaliases.
func (o *postmapOpts) parse(name string, src io.Reader, stderr io.Writer, fn func(mapfile.Entry) error) error {
	warn := func(msg string) { o.warn(stderr, "%s", msg) }
	if o.aliases {
		return mapfile.ParseAliasesOptions(name, src, mapfile.Options{FoldCase: !o.noFold, Warn: warn}, fn)
	}
	return mapfile.Parse(name, src, mapfile.Options{FoldCase: !o.noFold, Warn: warn}, fn)
}

// importFile replaces the table of file with file's entries, as one generation: a bad line fails the
// whole import and the table keeps its old contents. Duplicates: the first wins with a warning (postmap's
// default), silently with -w, the last wins with -r.
func (o *postmapOpts) importFile(ctx context.Context, ms store.MapStore, file string, stderr io.Writer) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("open %s: %w", file, err)
	}
	defer f.Close()
	prog := newProgress(stderr, file)
	seen := map[string]int32{}
	_, err = ms.MapImport(ctx, managed.TableName(file), func(yield func(k, v string) error) error {
		err := o.parse(file, bufio.NewReaderSize(f, 256<<10), stderr, func(e mapfile.Entry) error {
			if !o.replace {
				if line, dup := seen[e.Key]; dup {
					if !o.quiet {
						o.warn(stderr, "%s, line %d: duplicate entry: \"%s\" (first on line %d)", file, e.Line, e.Key, line)
					}
					return nil
				}
				seen[e.Key] = int32(e.Line)
			}
			prog.add()
			return yield(e.Key, e.Value)
		})
		if err == nil && o.aliases {
			// postalias's YP compatibility entry, "@" → "@", unless the file had one.
			if _, dup := seen["@"]; !dup || o.replace {
				err = yield("@", "@")
			}
		}
		return err
	}, store.MapImportParams{Replace: o.replace})
	prog.done()
	var le *mapfile.LineError
	if errors.As(err, &le) {
		// The file and line say it all; the table is unchanged.
		return fmt.Errorf("%w; %s:%s unchanged", le, "table", managed.TableName(file))
	}
	return err
}

// put adds the entries read from src to the current table in place (postmap -i): an existing key keeps
// its value with a warning, unless -r.
func (o *postmapOpts) put(ctx context.Context, ms store.MapStore, file string, src io.Reader, stderr io.Writer) error {
	var entries []store.MapEntry
	err := o.parse("-", src, stderr, func(e mapfile.Entry) error {
		entries = append(entries, store.MapEntry{Key: e.Key, Value: e.Value})
		return nil
	})
	if err != nil {
		return err
	}
	existed, err := ms.MapPut(ctx, managed.TableName(file), entries, store.MapPutParams{Replace: o.replace})
	if err != nil {
		return err
	}
	if !o.quiet {
		for _, k := range existed {
			o.warn(stderr, "%s: duplicate entry: \"%s\"", managed.TableName(file), k)
		}
	}
	return nil
}

// mapList is `mtactl map list`: every managed table with its last change.
// mapCheck opens every table that main.cf names and probes it once (SQL
// tables run their query), so a wrong file, column or table shows now
// rather than as a 451 at the first RCPT.
func mapCheck(dir string, stdout, stderr io.Writer) int {
	ctx := context.Background()
	cfg, err := config.Load(dir)
	if err != nil {
		fmt.Fprintf(stderr, "mtactl map check: fatal: %v\n", err)
		return 1
	}
	st, err := openStore(ctx, dir)
	if err != nil {
		fmt.Fprintf(stderr, "mtactl map check: fatal: %v\n", err)
		return 1
	}
	defer st.Close()
	opener := &mapopen.Opener{Store: st, Warnf: func(f string, a ...any) { fmt.Fprintf(stderr, "mtactl map check: warning: "+f+"\n", a...) }}
	defer opener.Close()
	checked, errs := mapopen.Check(ctx, opener, cfg)
	for _, err := range errs {
		fmt.Fprintf(stderr, "mtactl map check: %v\n", err)
	}
	fmt.Fprintf(stdout, "%d tables checked, %d failed\n", checked, len(errs))
	if len(errs) > 0 {
		return 1
	}
	return 0
}

func mapList(dir string, stdout, stderr io.Writer) int {
	ctx := context.Background()
	ms, closeStore, err := openMaps(ctx, dir)
	if err != nil {
		fmt.Fprintf(stderr, "mtactl map: fatal: %v\n", err)
		return 1
	}
	defer closeStore()
	names, err := ms.MapNames(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "mtactl map: fatal: %v\n", err)
		return 1
	}
	for _, n := range names {
		fmt.Fprintf(stdout, "%s\t%s\n", n.Name, n.UpdatedAt.UTC().Format(time.RFC3339))
	}
	return 0
}

// progress prints a counter line on a terminal during a long import.
type progress struct {
	w    io.Writer
	name string
	n    int64
	last time.Time
	on   bool
}

func newProgress(w io.Writer, name string) *progress {
	p := &progress{w: w, name: name}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.on = true
			p.last = time.Now()
		}
	}
	return p
}

func (p *progress) add() {
	p.n++
	if !p.on || p.n%4096 != 0 {
		return
	}
	if now := time.Now(); now.Sub(p.last) >= 200*time.Millisecond {
		p.last = now
		fmt.Fprintf(p.w, "\r%s: %d entries", p.name, p.n)
	}
}

func (p *progress) done() {
	if p.on && p.n >= 4096 {
		fmt.Fprintf(p.w, "\r%s: %d entries\n", p.name, p.n)
	}
}
