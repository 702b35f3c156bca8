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
	"path/filepath"

	"sqlmta/config"
	"sqlmta/store/open"
)

const usage = `usage: mtactl [-c CONFIG_DIR] COMMAND [ARGS]
commands:
  conf [-dnhHxm] [-e|-X|-#] [name[=value] ...]
                                        print or edit parameters, as postconf does
  migrate up|status                     apply or list database migrations
  map import|query|delete|dump|list|check
                                        lookup tables, as postmap does
  aliases [[type:]file ...]             import alias_database, as newaliases does
  queue list|flush|delete|hold|release|requeue|cat|shape
                                        the mail queue, as mailq, postqueue, postsuper, postcat, qshape do
  send [options] [recipient ...]        submit mail to the maildrop, as sendmail does
  postfix start|start-fg|stop|reload|status|check|flush
                                        drive mtad, as the postfix command does
`

func main() {
	// Called through a link, mtactl is that Postfix tool.
	switch filepath.Base(os.Args[0]) {
	case "postmap":
		os.Exit(postmapMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	case "newaliases":
		os.Exit(aliasesMain("newaliases", defaultConfigDir(), os.Args[1:], os.Stdout, os.Stderr))
	case "mailq":
		os.Exit(mailqMain(defaultConfigDir(), os.Args[1:], os.Stdout, os.Stderr))
	case "postqueue":
		os.Exit(postqueueMain("postqueue", defaultConfigDir(), os.Args[1:], os.Stdout, os.Stderr))
	case "postsuper":
		os.Exit(postsuperMain("postsuper", defaultConfigDir(), os.Args[1:], os.Stdin, os.Stderr))
	case "postcat":
		os.Exit(postcatMain("postcat", defaultConfigDir(), os.Args[1:], os.Stdout, os.Stderr))
	case "sendmail":
		os.Exit(sendMain("sendmail", defaultConfigDir(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	case "postfix":
		os.Exit(postfixMain("postfix", defaultConfigDir(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
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
	case "map":
		return mapMain(*dir, rest, stdin, stdout, stderr)
	case "aliases":
		return aliasesMain("mtactl aliases", *dir, rest, stdout, stderr)
	case "queue":
		return queueMain(*dir, rest, stdin, stdout, stderr)
	case "send":
		return sendMain("sendmail", *dir, rest, stdin, stdout, stderr)
	case "postfix":
		return postfixMain("postfix", *dir, rest, stdout, stderr)
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
