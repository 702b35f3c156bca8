package main

import (
	"flag"
	"fmt"
	"io"
	"sort"

	"sqlmta/config"
)

// conf prints parameters the way postconf(1) does.
func conf(dir string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("conf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defaults := fs.Bool("d", false, "print built-in defaults")
	explicit := fs.Bool("n", false, "print only parameters set in main.cf")
	valueOnly := fs.Bool("h", false, "print values only")
	expand := fs.Bool("x", false, "expand $name in values")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	cfg, err := config.Load(dir)
	if err != nil {
		return err
	}
	known := map[string]string{}
	for _, p := range config.Defaults() {
		known[p.Name] = p.Default
	}
	names := fs.Args()
	if len(names) == 0 {
		if *explicit {
			names = cfg.Explicit()
		} else {
			for n := range known {
				names = append(names, n)
			}
			if !*defaults {
				names = append(names, cfg.Explicit()...)
			}
		}
		sort.Strings(names)
		names = dedup(names)
	}
	for _, name := range names {
		var value string
		var ok bool
		if *defaults {
			value, ok = known[name]
		} else {
			value, ok = cfg.Raw(name)
		}
		if !ok {
			fmt.Fprintf(stderr, "postconf: warning: %s: unknown parameter\n", name)
			continue
		}
		if *expand {
			if value, err = cfg.Expand(value); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		if *valueOnly {
			fmt.Fprintln(stdout, value)
		} else if value == "" {
			fmt.Fprintf(stdout, "%s =\n", name)
		} else {
			fmt.Fprintf(stdout, "%s = %s\n", name, value)
		}
	}
	return nil
}

func dedup(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
