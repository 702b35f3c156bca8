// Command mtactl administers sqlmta: `conf` (postconf) and `migrate` so far;
// the other Postfix tools follow in later work.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"

	"sqlmta/config"
	"sqlmta/store/open"
)

const usage = `usage: mtactl [-c CONFIG_DIR] COMMAND [ARGS]
commands:
  conf [-d] [-n] [-h] [-x] [name ...]   print parameters, as postconf does
  migrate up|status                     apply or list database migrations
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mtactl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	dir := fs.String("c", defaultConfigDir(), "configuration directory")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	var err error
	switch cmd {
	case "conf":
		err = conf(*dir, rest, stdout, stderr)
	case "migrate":
		err = migrate(*dir, rest, stdout)
	default:
		fs.Usage()
		return 2
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "mtactl %s: %v\n", cmd, err)
			return 2
		}
		fmt.Fprintf(stderr, "mtactl %s: fatal: %v\n", cmd, err)
		return 1
	}
	return 0
}

type usageError string

func (e usageError) Error() string { return string(e) }

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

func migrate(dir string, args []string, stdout io.Writer) error {
	if len(args) != 1 || (args[0] != "up" && args[0] != "status") {
		return usageError("usage: mtactl migrate up|status")
	}
	cfg, err := config.Load(dir)
	if err != nil {
		return err
	}
	url := cfg.Get("database_url")
	ctx := context.Background()
	if args[0] == "status" {
		return open.MigrateStatus(ctx, url, stdout)
	}
	if err := ensureDataDir(cfg); err != nil {
		return err
	}
	return open.Migrate(ctx, url)
}

// ensureDataDir creates data_directory for the default SQLite database.
func ensureDataDir(cfg *config.Config) error {
	if d := cfg.Get("data_directory"); d != "" {
		return os.MkdirAll(d, 0o700)
	}
	return nil
}

func defaultConfigDir() string {
	if d := os.Getenv("MAIL_CONFIG"); d != "" {
		return d
	}
	return "/etc/sqlmta"
}
