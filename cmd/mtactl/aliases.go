package main

import (
	"fmt"
	"io"
	"strings"

	"sqlmta/config"
	"sqlmta/mapdrivers/managed"
)

// aliasesMain is `mtactl aliases [-c dir] [[type:]file …]` and newaliases: it imports each alias_database
// table (default hash:/etc/aliases) from its aliases(5) source file, or the files given as arguments.
func aliasesMain(prog, dir string, args []string, stdout, stderr io.Writer) int {
	o := postmapOpts{prog: prog, dir: dir, aliases: true}
	rest, err := getopt(args, "c:fo:v", func(c byte, arg string) {
		switch c {
		case 'c':
			o.dir = arg
		case 'f':
			o.noFold = true
		}
		// -o… (sendmail -bi compatibility) and -v change nothing here.
	})
	if err != nil {
		fmt.Fprintf(stderr, "%s: fatal: %v\n", prog, err)
		return 1
	}
	o.maps = rest
	if len(o.maps) == 0 {
		cfg, err := config.Load(o.dir)
		if err != nil {
			return o.fatal(stderr, err)
		}
		for _, ref := range cfg.List("alias_database") {
			// Only tables this command can build; Postfix's newaliases skips others the same way.
			if typ, _, ok := strings.Cut(ref, ":"); ok && !managed.IsType(typ) {
				o.warn(stderr, "%s: not a managed table type; skipped", ref)
				continue
			}
			o.maps = append(o.maps, ref)
		}
	}
	if len(o.maps) == 0 {
		return 0
	}
	return o.run(stdout, stderr)
}
