package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sqlmta/config"
)

// builtinConfigDir is the configuration directory that postconf -n does not
// report; any other -c directory shows up as config_directory, as with
// postconf.
const builtinConfigDir = "/etc/sqlmta"

// confOpts are postconf's options that mtactl conf supports.
type confOpts struct {
	dir                    string
	d, n, h, H, x, m, e, X bool
	comment                bool // -#
}

// parseConfOpts parses getopt-style options, so that combined flags such
// as -nx work as they do with postconf.
func parseConfOpts(dir string, args []string) (confOpts, []string, error) {
	o := confOpts{dir: dir}
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			args = args[1:]
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		args = args[1:]
		for i := 1; i < len(a); i++ {
			switch a[i] {
			case 'c':
				v := a[i+1:]
				if v == "" {
					if len(args) == 0 {
						return o, nil, usageError("option requires an argument -- 'c'")
					}
					v, args = args[0], args[1:]
				}
				o.dir = v
				i = len(a)
			case 'd':
				o.d = true
			case 'n':
				o.n = true
			case 'h':
				o.h = true
			case 'H':
				o.H = true
			case 'x':
				o.x = true
			case 'm':
				o.m = true
			case 'e':
				o.e = true
			case 'X':
				o.X = true
			case '#':
				o.comment = true
			case 'f', 'v':
				// -f folds long lines on output and -v is verbose; we
				// print unfolded and have nothing extra to say.
			default:
				return o, nil, usageError(fmt.Sprintf("invalid option -- '%c'", a[i]))
			}
		}
	}
	return o, args, nil
}

// conf prints or edits parameters the way postconf(1) does.
func conf(dir string, args []string, stdout, stderr io.Writer) error {
	o, names, err := parseConfOpts(dir, args)
	if err != nil {
		return err
	}
	warn := func(msg string) { fmt.Fprintf(stderr, "postconf: warning: %s\n", msg) }
	mainCF := filepath.Join(o.dir, "main.cf")

	// Since Postfix 2.8 "postconf name=value" means -e.
	if !o.e && !o.X && !o.comment && !o.d && !o.n && !o.m {
		for _, a := range names {
			if strings.Contains(a, "=") {
				o.e = true
				break
			}
		}
	}
	edits := 0
	for _, b := range []bool{o.e, o.X, o.comment} {
		if b {
			edits++
		}
	}
	if edits > 1 {
		return usageError("specify one of -e, -X or -#")
	}
	if o.m {
		for _, t := range config.MapTypes {
			fmt.Fprintln(stdout, t)
		}
		return nil
	}
	if edits == 1 {
		mode := config.EditSet
		switch {
		case o.X:
			mode = config.EditRemove
		case o.comment:
			mode = config.EditComment
		}
		if len(names) == 0 {
			return nil
		}
		warnings, err := config.EditMain(mainCF, mode, names)
		for _, w := range warnings {
			warn(w)
		}
		return err
	}

	if o.d {
		return confDefaults(o, names, stdout, warn)
	}

	if _, err := os.Stat(mainCF); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("open %s: %w", mainCF, err)
	}
	cfg, err := config.Load(o.dir)
	if err != nil {
		return err
	}
	// Warnings from reading main.cf come first, as with postconf.
	for _, w := range cfg.Warnings() {
		warn(w)
	}
	usage := cfg.Usage()
	for _, w := range usage.Warnings {
		if strings.Contains(w, ": undefined parameter: ") {
			warn(w)
		}
	}
	explicit := map[string]bool{}
	for _, n := range cfg.Explicit() {
		explicit[n] = true
	}
	if o.dir != builtinConfigDir {
		explicit["config_directory"] = true
	}
	isParam := func(n string) bool { return config.Known(n) || usage.Used[n] }

	if len(names) > 0 {
		var keep []string
		for _, n := range names {
			if isParam(n) {
				keep = append(keep, n)
			} else {
				warn(n + ": unknown parameter")
			}
		}
		names = keep
	} else {
		set := map[string]bool{}
		if o.n {
			for n := range explicit {
				if isParam(n) {
					set[n] = true
				}
			}
		} else {
			for _, p := range config.AllDefaults() {
				if !config.IsLegacy(p.Name) || explicit[p.Name] {
					set[p.Name] = true
				}
			}
			for n := range usage.Used {
				set[n] = true
			}
		}
		for n := range set {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	for _, n := range names {
		v, _ := cfg.Raw(n)
		if o.x && !config.IsRaw(n) {
			if v, err = cfg.Expand(v); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
		}
		printParam(stdout, o, n, v)
	}
	for _, w := range usage.Warnings {
		if strings.Contains(w, ": unused parameter: ") {
			warn(w)
		}
	}
	return nil
}

// confDefaults is postconf -d: built-in defaults only, main.cf unread.
func confDefaults(o confOpts, names []string, stdout io.Writer, warn func(string)) error {
	defaults := map[string]string{}
	for _, p := range config.AllDefaults() {
		defaults[p.Name] = p.Default
	}
	if len(names) == 0 {
		for _, p := range config.AllDefaults() {
			if !config.IsLegacy(p.Name) {
				names = append(names, p.Name)
			}
		}
	} else {
		var keep []string
		for _, n := range names {
			if _, ok := defaults[n]; ok {
				keep = append(keep, n)
			} else {
				warn(n + ": unknown parameter")
			}
		}
		names = keep
	}
	empty, err := config.Parse(filepath.Join(o.dir, "main.cf"), strings.NewReader(""))
	if err != nil {
		return err
	}
	for _, n := range names {
		v := defaults[n]
		if o.x && !config.IsRaw(n) {
			if v, err = empty.Expand(v); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
		}
		printParam(stdout, o, n, v)
	}
	return nil
}

func printParam(w io.Writer, o confOpts, name, value string) {
	value = config.FoldSpace(value)
	switch {
	case o.H:
		fmt.Fprintln(w, name)
	case o.h:
		fmt.Fprintln(w, value)
	case value == "":
		fmt.Fprintf(w, "%s =\n", name)
	default:
		fmt.Fprintf(w, "%s = %s\n", name, value)
	}
}
