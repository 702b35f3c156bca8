// Command mtad is the sqlmta daemon: it runs in the foreground, serves SMTP
// per master.cf and delivers from the shared queue. SIGTERM drains and
// exits; SIGHUP reloads main.cf.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"sqlmta/mtad/node"
)

func main() {
	dir := flag.String("c", defaultConfigDir(), "configuration directory (main.cf, master.cf)")
	noMigrate := flag.Bool("no-migrate", false, "do not apply pending database migrations at start")
	flag.Parse()

	// Signals are caught before the node starts serving: a SIGHUP sent as
	// soon as the port answers must reload, not kill the process.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	ctx := context.Background()
	n, err := node.Start(ctx, node.Options{ConfigDir: *dir, NoMigrate: *noMigrate})
	if err != nil {
		fmt.Fprintf(os.Stderr, "mtad: fatal: %v\n", err)
		os.Exit(1)
	}
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			if err := n.Reload(); err != nil {
				fmt.Fprintf(os.Stderr, "mtad: warning: reload: %v\n", err)
			}
			continue
		}
		break
	}
	stopCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := n.Stop(stopCtx); err != nil {
		fmt.Fprintf(os.Stderr, "mtad: warning: stop: %v\n", err)
	}
}

// defaultConfigDir is $MAIL_CONFIG, else /etc/sqlmta.
func defaultConfigDir() string {
	if d := os.Getenv("MAIL_CONFIG"); d != "" {
		return d
	}
	return "/etc/sqlmta"
}
