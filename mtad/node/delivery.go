package node

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"sqlmta/config"
	"sqlmta/mtad/envelope"
	"sqlmta/mtad/rewrite"
	"sqlmta/mtad/transport"
	localtr "sqlmta/mtad/transport/local"
	"sqlmta/mtad/transport/mailbox"
	"sqlmta/mtad/transport/pipe"
	"sqlmta/mtad/transport/virtual"
)

// addDelivery registers the local and virtual delivery agents and master.cf's
// pipe services. It runs after the other transports exist, since local
// hands mailboxes to mailbox_transport and unknown users to
// fallback_transport.
func (n *Node) addDelivery(cfg *config.Config, res *rewrite.Resolver, ts map[string]transport.Transport, errs *[]error) {
	dur := func(name string) time.Duration {
		d, err := cfg.Duration(name)
		*errs = append(*errs, err)
		return d
	}
	num := func(name string) int {
		v, err := cfg.Int(name)
		*errs = append(*errs, err)
		return v
	}
	boolean := func(name string) bool {
		v, err := cfg.Bool(name)
		*errs = append(*errs, err)
		return v
	}
	size := func(name string) int64 {
		v, err := cfg.Size(name)
		*errs = append(*errs, err)
		return v
	}
	locks := func(name string) mailbox.Locks {
		l, err := mailbox.ParseLocks(cfg.Get(name))
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", name, err))
		}
		l.Attempts, l.Delay, l.Stale = num("deliver_lock_attempts"), dur("deliver_lock_delay"), dur("stale_lock_time")
		return l
	}
	// "name:nexthop" parameters naming another transport.
	via := func(name string) (transport.Transport, string) {
		v := strings.TrimSpace(cfg.Get(name))
		if v == "" {
			return nil, ""
		}
		tn, hop, _ := strings.Cut(v, ":")
		t := ts[tn]
		if t == nil {
			*errs = append(*errs, fmt.Errorf("%s: unknown transport %q", name, tn))
		}
		return t, hop
	}
	hostname := cfg.Get("myhostname")
	localName, _, _ := strings.Cut(cfg.Get("local_transport"), ":")
	lc := localtr.Config{
		Hostname:            hostname,
		AliasMaps:           supportedMaps(cfg.List("alias_maps")),
		AliasMapsDefault:    !cfg.IsExplicit("alias_maps"),
		Warnf:               func(f string, a ...any) { n.log.Printf("local", "warning: "+f, a...) },
		OpenMap:             n.maps.Open,
		ForwardPath:         config.SplitList(rawParam(cfg, "forward_path")),
		Expand:              expandRaw(cfg),
		AllowMailToCommands: cfg.List("allow_mail_to_commands"),
		AllowMailToFiles:    cfg.List("allow_mail_to_files"),
		OwnerRequestSpecial: boolean("owner_request_special"),
		ExpandOwnerAlias:    boolean("expand_owner_alias"),
		RecipientDelimiter:  cfg.Get("recipient_delimiter"),
		PrependDelivered:    cfg.List("prepend_delivered_header"),
		DefaultPrivs:        cfg.Get("default_privs"),
		ExportEnvironment:   cfg.List("export_environment"),
		LocalCommandShell:   cfg.Get("local_command_shell"),
		CommandTimeLimit:    dur("command_time_limit"),
		// Not $name-expanded (postconf(5)): shell syntax stays as written.
		MailboxCommand:       rawParam(cfg, "mailbox_command"),
		HomeMailbox:          cfg.Get("home_mailbox"),
		MailSpoolDirectory:   cfg.Get("mail_spool_directory"),
		MailboxLocks:         locks("mailbox_delivery_lock"),
		MailboxSizeLimit:     size("mailbox_size_limit"),
		LuserRelay:           rawParam(cfg, "luser_relay"),
		DuplicateFilterLimit: num("duplicate_filter_limit"),
		IsLocal:              func(addr string) bool { return res.Resolve(addr).Transport == localName },
		Qualify:              res.Qualify,
		Submit: func(ctx context.Context, env *envelope.Envelope, r io.Reader) (string, error) {
			// cleanup fills in env.QueueID (and redraws it on a clash).
			err := n.cleanup.Submit(ctx, env, r)
			return env.QueueID, err
		},
		Log: n.log,
	}
	lc.MailboxTransport, lc.MailboxNexthop = via("mailbox_transport")
	lc.FallbackTransport, lc.FallbackNexthop = via("fallback_transport")
	ts["local"] = localtr.New(lc)

	ts["virtual"] = virtual.New(virtual.Config{
		Hostname:           hostname,
		OpenMap:            n.maps.Open,
		MailboxMaps:        cfg.List("virtual_mailbox_maps"),
		UIDMaps:            cfg.List("virtual_uid_maps"),
		GIDMaps:            cfg.List("virtual_gid_maps"),
		MailboxBase:        cfg.Get("virtual_mailbox_base"),
		MinimumUID:         num("virtual_minimum_uid"),
		MailboxLimit:       size("virtual_mailbox_limit"),
		Locks:              locks("virtual_mailbox_lock"),
		RecipientDelimiter: cfg.Get("recipient_delimiter"),
		DefaultLayout:      true,
	})

	pipes, err := config.LoadPipeServices(n.opts.ConfigDir)
	if err != nil {
		*errs = append(*errs, err)
		return
	}
	for _, p := range pipes {
		pcfg := cfg.With(p.Overrides)
		limit := num("default_destination_recipient_limit")
		if v, ok := pcfg.Raw(p.Name + "_destination_recipient_limit"); ok {
			if limit, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
				*errs = append(*errs, fmt.Errorf("%s_destination_recipient_limit: bad number %q", p.Name, v))
			}
		}
		timeLimit := dur("command_time_limit")
		if v, ok := pcfg.Raw(p.Name + "_time_limit"); ok {
			if d, ok := config.ParseDuration(strings.TrimSpace(v), 's'); ok {
				timeLimit = d
			}
		}
		ts[p.Name] = pipe.New(pipe.Config{Name: p.Name, Argv: p.Argv, Flags: p.Flags, User: p.User,
			NullSender: p.NullSender, RecipientLimit: limit, TimeLimit: timeLimit})
	}
}

// supportedMaps drops nis: tables from alias_maps' default
// ("hash:/etc/aliases, nis:mail.aliases"): Postfix built without NIS skips
// them too.
func supportedMaps(specs []string) []string {
	var out []string
	for _, s := range specs {
		if !strings.HasPrefix(s, "nis:") {
			out = append(out, s)
		}
	}
	return out
}

// rawParam is a parameter's value without $name expansion.
func rawParam(cfg *config.Config, name string) string {
	v, _ := cfg.Raw(name)
	return strings.TrimSpace(v)
}

// expandRaw expands forward_path and luser_relay templates with local(8)'s
// per-recipient names.
func expandRaw(cfg *config.Config) func(string, map[string]string) (string, error) {
	return func(s string, vars map[string]string) (string, error) { return cfg.ExpandWith(s, vars) }
}
