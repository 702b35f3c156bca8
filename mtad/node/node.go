// Package node wires one mtad node from its configuration: store, cleanup,
// qmgr, transports and the smtpd listeners of master.cf. cmd/mtad only parses
// flags and handles signals; tests drive the real binary.
package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"sqlmta/config"
	mapopen "sqlmta/mapdrivers/open"
	"sqlmta/mtad/bounce"
	"sqlmta/mtad/cleanup"
	"sqlmta/mtad/dnsq"
	"sqlmta/mtad/envelope"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/matchlist"
	"sqlmta/mtad/qmgr"
	"sqlmta/mtad/queueid"
	"sqlmta/mtad/rewrite"
	"sqlmta/mtad/smtpd"
	"sqlmta/mtad/transport"
	"sqlmta/mtad/transport/lmtp"
	"sqlmta/mtad/transport/pipe"
	smtptransport "sqlmta/mtad/transport/smtp"
	"sqlmta/store"
	"sqlmta/store/open"
)

// Options are the daemon's command-line choices.
type Options struct {
	ConfigDir string
	NoMigrate bool      // do not apply pending migrations at start
	Stderr    io.Writer // where the mail log goes when maillog_file is unset
}

// Node is one running mtad.
type Node struct {
	opts     Options
	cfg      *config.Config
	log      *maillog.Logger
	logFile  io.Closer
	st       store.Store
	qmgr     *qmgr.Qmgr
	smtpTr   *smtptransport.Transport
	lmtpTr   *lmtp.Transport
	servers  []*smtpd.Server
	services []config.Service
	cleanup  *cleanup.Cleanup
	bouncer  *bounce.Bouncer // also returns maildrop mail cleanup refuses
	maps     *mapopen.Opener
	oldMaps  []*mapopen.Opener // replaced on SIGHUP; closed at Stop
	host     *hostState        // pid file and pickup (pickup.go)
	sasl     saslClients       // Dovecot auth clients (sasl.go)

	qmgrDone chan error
	cancel   context.CancelFunc
	serveWG  sync.WaitGroup
}

// Start loads the configuration, migrates and opens the store, binds every
// listener and starts the qmgr. It returns once the node accepts mail.
func Start(ctx context.Context, opts Options) (*Node, error) {
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	cfg, err := config.Load(opts.ConfigDir)
	if err != nil {
		return nil, err
	}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if err := unsupportedContentChecks(cfg); err != nil {
		return nil, err
	}
	n := &Node{opts: opts, cfg: cfg}
	var logW io.Writer = opts.Stderr
	if path := cfg.Get("maillog_file"); path != "" && path != "/dev/stderr" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return nil, fmt.Errorf("maillog_file: %w", err)
		}
		logW, n.logFile = f, f
	}
	n.log = maillog.New(logW, cfg.Get("myhostname"), cfg.Get("syslog_name"))
	for _, w := range cfg.Warnings() {
		n.log.Printf("postfix", "warning: %s", w)
	}

	dbURL := cfg.Get("database_url")
	if strings.HasPrefix(dbURL, "sqlite:") {
		if err := os.MkdirAll(cfg.Get("data_directory"), 0o700); err != nil {
			return nil, fmt.Errorf("data_directory: %w", err)
		}
	}
	if !opts.NoMigrate {
		if err := open.Migrate(ctx, dbURL); err != nil {
			return nil, fmt.Errorf("migrate %s: %w", redact(dbURL), err)
		}
	}
	n.st, err = open.Open(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", redact(dbURL), err)
	}
	n.maps = n.checkMaps(ctx, cfg)
	if err := n.build(); err != nil {
		n.maps.Close()
		n.st.Close()
		return nil, err
	}
	var lns []net.Listener
	for _, svc := range n.services {
		ln, err := net.Listen("tcp", svc.Listen)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			n.st.Close()
			return nil, fmt.Errorf("service %s: %w", svc.Name, err)
		}
		lns = append(lns, ln)
	}
	if err := n.startLocal(); err != nil { // pid file and pickup (pickup.go)
		for _, l := range lns {
			l.Close()
		}
		n.stopLocal()
		n.maps.Close()
		n.st.Close()
		return nil, err
	}
	qctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.qmgrDone = make(chan error, 1)
	go func() { n.qmgrDone <- n.qmgr.Run(qctx) }()
	for i, ln := range lns {
		srv := n.servers[i]
		n.serveWG.Add(1)
		go func() {
			defer n.serveWG.Done()
			_ = srv.Serve(ln)
		}()
		n.log.Printf("master", "daemon started -- service %s listening on %s", n.services[i].Name, ln.Addr())
	}
	return n, nil
}

// build makes every stage from n.cfg.
func (n *Node) build() error {
	cfg := n.cfg
	var errs []error
	get := func(name string) string { return cfg.Get(name) }
	dur := func(name string) time.Duration {
		d, err := cfg.Duration(name)
		errs = append(errs, err)
		return d
	}
	num := func(name string) int {
		v, err := cfg.Int(name)
		errs = append(errs, err)
		return v
	}
	boolean := func(name string) bool {
		v, err := cfg.Bool(name)
		errs = append(errs, err)
		return v
	}
	size := func(name string) int64 {
		v, err := cfg.Size(name)
		errs = append(errs, err)
		return v
	}
	res, err := newResolver(cfg, n.maps)
	if err != nil {
		return err
	}
	res.Transport = transportMaps(cfg, n.maps, n.log)
	hostname := get("myhostname")
	n.cleanup = cleanup.New(cleanup.Config{
		Hostname:                       hostname,
		MailName:                       get("mail_name"),
		HeaderSizeLimit:                num("header_size_limit"),
		QueueRunDelay:                  dur("queue_run_delay"),
		ReceiveOverrideOptions:         cfg.List("receive_override_options"),
		AlwaysAddMissing:               boolean("always_add_missing_headers"),
		LocalAddrs:                     interfaceAddrs(),
		Qualify:                        res.Qualify,
		IsLocalDomain:                  res.LocalpartLookup,
		OpenMap:                        n.maps.Open,
		CanonicalMaps:                  cfg.List("canonical_maps"),
		SenderCanonicalMaps:            cfg.List("sender_canonical_maps"),
		RecipientCanonicalMaps:         cfg.List("recipient_canonical_maps"),
		VirtualAliasMaps:               cfg.List("virtual_alias_maps"),
		HeaderChecks:                   cfg.List("header_checks"),
		BodyChecks:                     cfg.List("body_checks"),
		MimeHeaderChecks:               cfg.List("mime_header_checks"),
		NestedHeaderChecks:             cfg.List("nested_header_checks"),
		DisableMimeInput:               boolean("disable_mime_input_processing"),
		BodyChecksSizeLimit:            int64(num("body_checks_size_limit")),
		CanonicalClasses:               cfg.List("canonical_classes"),
		SenderCanonicalClasses:         cfg.List("sender_canonical_classes"),
		RecipientCanonicalClasses:      cfg.List("recipient_canonical_classes"),
		MasqueradeDomains:              cfg.List("masquerade_domains"),
		MasqueradeExceptions:           cfg.List("masquerade_exceptions"),
		MasqueradeClasses:              cfg.List("masquerade_classes"),
		RecipientDelimiter:             get("recipient_delimiter"),
		PropagateUnmatchedExtensions:   cfg.List("propagate_unmatched_extensions"),
		EmptyAddressRecipient:          get("empty_address_recipient"),
		VirtualAliasRecursionLimit:     num("virtual_alias_recursion_limit"),
		VirtualAliasExpansionLimit:     num("virtual_alias_expansion_limit"),
		VirtualAliasAddressLengthLimit: num("virtual_alias_address_length_limit"),
		DuplicateFilterLimit:           num("duplicate_filter_limit"),
		ContentFilter:                  get("content_filter"),
		AlwaysBcc:                      get("always_bcc"),
		SenderBccMaps:                  cfg.List("sender_bcc_maps"),
		RecipientBccMaps:               cfg.List("recipient_bcc_maps"),
		MessageDropHeaders:             append([]string{}, cfg.List("message_drop_headers")...),
		LocalHeaderRewriteClients:      append([]string{}, cfg.List("local_header_rewrite_clients")...),
		MyNetworks:                     myNetworks(cfg, &errs),
		RemoteHeaderRewriteDomain:      get("remote_header_rewrite_domain"),
		QualifyRemote:                  remoteQualifier(res, get("remote_header_rewrite_domain")),
	}, n.st, n.log)

	noDNS, err := cfg.Bool("disable_dns_lookups")
	errs = append(errs, err)
	switch level := get("smtp_dns_support_level"); level {
	case "disabled":
		noDNS = true
	case "", "enabled", "dnssec":
	default:
		errs = append(errs, fmt.Errorf("smtp_dns_support_level: bad value %q", level))
	}
	hostLookup := cfg.List("smtp_host_lookup")
	for _, h := range hostLookup {
		if h != "dns" && h != "native" {
			errs = append(errs, fmt.Errorf("smtp_host_lookup: bad value %q", h))
		}
	}
	n.smtpTr = smtptransport.New(smtptransport.Config{
		HeloName:        get("smtp_helo_name"),
		ConnectTimeout:  dur("smtp_connect_timeout"),
		HeloTimeout:     dur("smtp_helo_timeout"),
		MailTimeout:     dur("smtp_mail_timeout"),
		RcptTimeout:     dur("smtp_rcpt_timeout"),
		DataInitTimeout: dur("smtp_data_init_timeout"),
		DataXferTimeout: dur("smtp_data_xfer_timeout"),
		DataDoneTimeout: dur("smtp_data_done_timeout"),
		RsetTimeout:     dur("smtp_rset_timeout"),
		IdleTimeout:     dur("smtp_connection_cache_time_limit"),
		MXAddressLimit:  num("smtp_mx_address_limit"),
		MXSessionLimit:  num("smtp_mx_session_limit"),
		TLSLevel:        n.smtpTLSLevel(cfg),
		NoDNS:           noDNS,
		HostLookup:      hostLookup,
		SASL:            n.smtpSASL(cfg, res, &errs),
		BindAddress:     bindAddress(cfg, "smtp_bind_address", false, &errs),
		BindAddress6:    bindAddress(cfg, "smtp_bind_address6", true, &errs),
		Warnf:           func(f string, a ...any) { n.log.Printf("smtp", "warning: "+f, a...) },
	})
	transports := map[string]transport.Transport{
		"smtp":  n.smtpTr,
		"relay": n.smtpTr,
	}
	n.lmtpTr = addTransports(cfg, transports, &errs)
	n.addDelivery(cfg, res, transports, &errs)
	b := &bounce.Bouncer{
		Hostname:                 hostname,
		SizeLimit:                size("bounce_size_limit"),
		MaxQueueLifetime:         dur("maximal_queue_lifetime"),
		DelayWarningTime:         dur("delay_warning_time"),
		NotifyClasses:            cfg.List("notify_classes"),
		BounceNoticeRecipient:    get("bounce_notice_recipient"),
		TwoBounceNoticeRecipient: get("2bounce_notice_recipient"),
		DelayNoticeRecipient:     get("delay_notice_recipient"),
		DoubleBounceSender:       get("double_bounce_sender"),
		Store:                    n.st,
		Submit:                   n.cleanup,
		Log:                      n.log,
	}
	n.bouncer = b
	names := make([]string, 0, len(transports))
	// Delivery lines carry master.cf's command name, and the relay service's
	// syslog_name = postfix/$service_name of the stock master.cf.
	logNames := map[string]string{rewrite.RetryTransport: "error", "relay": "relay/smtp"}
	for name, tr := range transports {
		names = append(names, name)
		if _, ok := tr.(*pipe.Transport); ok {
			logNames[name] = "pipe"
		}
	}
	limits, err := qmgr.ConfigLimits(cfg, names)
	errs = append(errs, err)
	n.qmgr = qmgr.New(qmgr.Config{
		Owner:            nodeName(hostname),
		BatchSize:        num("qmgr_claim_batch_size"),
		Lease:            dur("qmgr_lease_time"),
		PollInterval:     dur("qmgr_poll_interval"),
		MinBackoff:       dur("minimal_backoff_time"),
		MaxBackoff:       dur("maximal_backoff_time"),
		MaxQueueLifetime: dur("maximal_queue_lifetime"),
		ProcessLimit:     num("default_process_limit"),
		DestConcurrency:  num("default_destination_concurrency_limit"),
		RecipientLimit:   num("default_destination_recipient_limit"),
		// The qmgr holds recipients: bounding them by both limits also
		// bounds the messages by qmgr_message_active_limit.
		ActiveLimit:     min(num("qmgr_message_active_limit"), num("qmgr_message_recipient_limit")),
		Limits:          limits,
		DeferTransports: cfg.List("defer_transports"),
		TransportRetry:  dur("transport_retry_time"),
		LogNames:        logNames,

		BounceQueueLifetime: dur("bounce_queue_lifetime"),
		DelayWarning:        dur("delay_warning_time"),
	}, n.st, res.Resolve, transports, n.log, b)
	n.cleanup.Enqueued = n.qmgr.Wake

	services, err := config.LoadMaster(n.opts.ConfigDir)
	if err != nil {
		return err
	}
	if len(services) == 0 {
		services = []config.Service{{Name: "smtp", Listen: ":25", MaxProc: -1}}
	}
	n.services = services
	for _, svc := range services {
		scfg, err := n.smtpdConfig(cfg.With(svc.Overrides), res, n.maps)
		if err != nil {
			return fmt.Errorf("service %s: %w", svc.Name, err)
		}
		if err := serviceLimits(&scfg, cfg, svc); err != nil {
			return err
		}
		srv, err := smtpd.New(scfg)
		if err != nil {
			return fmt.Errorf("service %s: %w", svc.Name, err)
		}
		n.servers = append(n.servers, srv)
	}
	return errors.Join(errs...)
}

// serviceLimits sets what master(8) decides for a service: its name and
// its process limit. master.cf's maxproc "-" means main.cf's
// default_process_limit, which a service's -o cannot change; a number
// (0 = no limit) is the limit itself.
func serviceLimits(c *smtpd.Config, mainCf *config.Config, svc config.Service) error {
	c.ServiceName = svc.Name
	if svc.MaxProc >= 0 {
		c.ProcessLimit = svc.MaxProc
		return nil
	}
	n, err := mainCf.Int("default_process_limit")
	if err != nil {
		return fmt.Errorf("service %s: %w", svc.Name, err)
	}
	c.ProcessLimit = n
	return nil
}

// myNetworks is mynetworks as cleanup's permit_mynetworks needs it.
func myNetworks(cfg *config.Config, errs *[]error) func(netip.Addr) bool {
	nets, err := matchlist.ParseNetworks(cfg.List("mynetworks"))
	if err != nil {
		*errs = append(*errs, fmt.Errorf("mynetworks: %w", err))
		return nil
	}
	return nets.Contains
}

// remoteQualifier is trivial-rewrite's remote context: the standard form
// with remote_header_rewrite_domain in place of $myorigin and $mydomain.
func remoteQualifier(res *rewrite.Resolver, domain string) func(string) string {
	remote := *res
	remote.MyOrigin, remote.MyDomain = domain, domain
	return remote.Qualify
}

// relayDomains matches a client host name against relay_domains, for the
// old check_relay_domains restriction.
func relayDomains(res *rewrite.Resolver) func(string) bool {
	return func(name string) bool {
		if res.RelayDomains == nil {
			return false
		}
		ok, _ := res.RelayDomains.Match(context.Background(), name)
		return ok
	}
}

// newResolver reads trivial-rewrite's parameters. Domain lists may name
// tables (virtual_mailbox_domains = pgsql:…, virtual_alias_domains'
// default $virtual_alias_maps), opened through maps.
func newResolver(cfg *config.Config, maps *mapopen.Opener) (*rewrite.Resolver, error) {
	var errs []error
	parents := cfg.List("parent_domain_matches_subdomains")
	domains := func(name string) rewrite.DomainSet {
		d, err := matchlist.ParseDomainsTables(context.Background(), cfg.List(name), slices.Contains(parents, name), maps.Open)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return nil
		}
		return d
	}
	own, err := rewrite.ParseOwnAddrs(context.Background(), cfg.List("inet_interfaces"), cfg.List("proxy_interfaces"))
	errs = append(errs, err)
	boolean := func(name string) bool {
		v, err := cfg.Bool(name)
		errs = append(errs, err)
		return v
	}
	return &rewrite.Resolver{
		MyDomain:              cfg.Get("mydomain"),
		SwapBangpath:          boolean("swap_bangpath"),
		AllowPercentHack:      boolean("allow_percent_hack"),
		AppendAtMyorigin:      boolean("append_at_myorigin"),
		AppendDotMydomain:     boolean("append_dot_mydomain"),
		MyDestination:         domains("mydestination"),
		VirtualAliasDomains:   domains("virtual_alias_domains"),
		VirtualMailboxDomains: domains("virtual_mailbox_domains"),
		RelayDomains:          domains("relay_domains"),
		LocalTransport:        cfg.Get("local_transport"),
		VirtualTransport:      cfg.Get("virtual_transport"),
		RelayTransport:        cfg.Get("relay_transport"),
		DefaultTransport:      cfg.Get("default_transport"),
		Relayhost:             cfg.Get("relayhost"),
		MyOrigin:              cfg.Get("myorigin"),
		Own:                   own,
	}, errors.Join(errs...)
}

// smtpdConfig reads smtpd's parameters from cfg (main.cf plus a service's
// -o overrides).
func (n *Node) smtpdConfig(cfg *config.Config, res *rewrite.Resolver, maps *mapopen.Opener) (smtpd.Config, error) {
	var errs []error
	must := func(err error) { errs = append(errs, err) }
	c := smtpd.Config{
		Hostname: cfg.Get("myhostname"),
		Banner:   cfg.Get("smtpd_banner"),
		// Non-nil even when empty: smtpd reads nil as "the default list".
		RelayRestrictions:     append([]string{}, cfg.List("smtpd_relay_restrictions")...),
		RecipientRestrictions: cfg.List("smtpd_recipient_restrictions"),
		ClientRestrictions:    cfg.List("smtpd_client_restrictions"),
		HeloRestrictions:      cfg.List("smtpd_helo_restrictions"),
		SenderRestrictions:    cfg.List("smtpd_sender_restrictions"),
		DataRestrictions:      cfg.List("smtpd_data_restrictions"),
		EndOfDataRestrictions: cfg.List("smtpd_end_of_data_restrictions"),
		EtrnRestrictions:      cfg.List("smtpd_etrn_restrictions"),
		RestrictionClasses:    map[string][]string{},
		OpenMap:               maps.Open,
		AccessParentDot:       !slices.Contains(cfg.List("parent_domain_matches_subdomains"), "smtpd_access_maps"),
		RecipientDelimiter:    cfg.Get("recipient_delimiter"),
		NullAccessKey:         cfg.Get("smtpd_null_access_lookup_key"),
		Qualify:               res.Qualify,
		Validate:              recipientValidator(cfg, res, maps),
		RelayDomains:          relayDomains(res),
		SenderLoginMaps:       cfg.List("smtpd_sender_login_maps"),
		LocalpartLookup:       res.LocalpartLookup,
		AuthDestination:       res.AuthDestination,
		SpoolDir:              cfg.Get("data_directory"),
		Log:                   n.log.WithName(cfg.Get("syslog_name")),
		// content_filter and local_header_rewrite_clients are smtpd's to
		// pass to cleanup, so a service's -o overrides count.
		Submitter: n.cleanup.Service(cfg.Get("content_filter"), append([]string{}, cfg.List("local_header_rewrite_clients")...)).
			WithOverrides(cfg.List("receive_override_options")),
		// Postfix's notices skip content_filter (internal_mail_filter_classes is empty).
		Notify:               n.cleanup.Service("", nil),
		NotifyClasses:        cfg.List("notify_classes"),
		ErrorNoticeRecipient: cfg.Get("error_notice_recipient"),
		DoubleBounceSender:   cfg.Get("double_bounce_sender"),
		MailName:             cfg.Get("mail_name"),
	}
	var err error
	c.QueueMinFree, err = cfg.Size("queue_minfree")
	must(err)
	c.HistoryFlushLimit, err = cfg.Int("smtpd_history_flush_threshold")
	must(err)
	c.MessageSizeLimit, err = cfg.Size("message_size_limit")
	must(err)
	c.RecipientLimit, err = cfg.Int("smtpd_recipient_limit")
	must(err)
	c.HeloRequired, err = cfg.Bool("smtpd_helo_required")
	must(err)
	c.ErrorSleep, err = cfg.Duration("smtpd_error_sleep_time")
	must(err)
	c.SoftErrorLimit, err = cfg.Int("smtpd_soft_error_limit")
	must(err)
	c.HardErrorLimit, err = cfg.Int("smtpd_hard_error_limit")
	must(err)
	c.Timeout, err = cfg.Duration("smtpd_timeout")
	must(err)
	c.LineLengthLimit, err = cfg.Int("line_length_limit")
	must(err)
	c.MyNetworks, err = matchlist.ParseNetworks(cfg.List("mynetworks"))
	if err != nil {
		must(fmt.Errorf("mynetworks: %w", err))
	}
	for _, class := range cfg.List("smtpd_restriction_classes") {
		c.RestrictionClasses[class] = cfg.List(class)
	}
	noDelay, err := cfg.Bool("smtpd_delay_reject")
	must(err)
	c.NoDelayReject = !noDelay
	c.AllowUntrustedRouting, err = cfg.Bool("allow_untrusted_routing")
	must(err)
	c.SoftBounce, err = cfg.Bool("soft_bounce")
	must(err)
	c.RejectUnlistedRecipient, err = cfg.Bool("smtpd_reject_unlisted_recipient")
	must(err)
	c.RejectUnlistedSender, err = cfg.Bool("smtpd_reject_unlisted_sender")
	must(err)
	showTable, err := cfg.Bool("show_user_unknown_table_name")
	must(err)
	c.HideUnknownTable = !showTable
	code := func(name string) int {
		v, err := cfg.Int(name)
		must(err)
		return v
	}
	c.Codes = smtpd.Codes{
		Reject:                     code("reject_code"),
		Defer:                      code("defer_code"),
		AccessMapReject:            code("access_map_reject_code"),
		AccessMapDefer:             code("access_map_defer_code"),
		RelayDomainsReject:         code("relay_domains_reject_code"),
		NonFQDNReject:              code("non_fqdn_reject_code"),
		InvalidHostnameReject:      code("invalid_hostname_reject_code"),
		UnknownAddressReject:       code("unknown_address_reject_code"),
		UnknownClientReject:        code("unknown_client_reject_code"),
		UnknownHostnameReject:      code("unknown_hostname_reject_code"),
		MapsRBLReject:              code("maps_rbl_reject_code"),
		MultiRecipientBounceReject: code("multi_recipient_bounce_reject_code"),
		PlaintextReject:            code("plaintext_reject_code"),
		UnknownLocalRecipient:      code("unknown_local_recipient_reject_code"),
		UnknownVirtualMailbox:      code("unknown_virtual_mailbox_reject_code"),
		UnknownRelayRecipient:      code("unknown_relay_recipient_reject_code"),
		UnknownVirtualAlias:        code("unknown_virtual_alias_reject_code"),
	}
	pdur := func(name string) time.Duration {
		v, err := cfg.Duration(name)
		must(err)
		return v
	}
	c.Policy = smtpd.PolicyDefaults{
		Timeout:            pdur("smtpd_policy_service_timeout"),
		MaxIdle:            pdur("smtpd_policy_service_max_idle"),
		MaxTTL:             pdur("smtpd_policy_service_max_ttl"),
		TryLimit:           code("smtpd_policy_service_try_limit"),
		RetryDelay:         pdur("smtpd_policy_service_retry_delay"),
		RequestLimit:       code("smtpd_policy_service_request_limit"),
		DefaultAction:      cfg.Get("smtpd_policy_service_default_action"),
		Context:            cfg.Get("smtpd_policy_service_policy_context"),
		CompatibilityLevel: cfg.Get("compatibility_level"),
		MailVersion:        cfg.Get("mail_version"),
	}
	c.Codes.UnverifiedRecipientReject = code("unverified_recipient_reject_code")
	c.Codes.UnverifiedRecipientDefer = code("unverified_recipient_defer_code")
	c.Codes.UnverifiedSenderReject = code("unverified_sender_reject_code")
	c.Codes.UnverifiedSenderDefer = code("unverified_sender_defer_code")
	c.UnverifiedRecipientTempfailAction = cfg.Get("unverified_recipient_tempfail_action")
	c.UnverifiedSenderTempfailAction = cfg.Get("unverified_sender_tempfail_action")
	c.UnverifiedRecipientReason = cfg.Get("unverified_recipient_reject_reason")
	c.UnverifiedSenderReason = cfg.Get("unverified_sender_reject_reason")
	v, err := newVerifier(cfg, n.st, func(ctx context.Context, env *envelope.Envelope, content string) error {
		return n.cleanup.Submit(ctx, env, strings.NewReader(content))
	}, queueid.New)
	must(err)
	if v != nil {
		c.Verify = v.query
	}
	c.DNS, err = smtpdDNSConfig(cfg, res)
	must(err)
	c.TLS, err = n.smtpdTLS(cfg)
	must(err)
	c.SASL, err = n.smtpdSASL(cfg)
	must(err)
	c.Anvil, err = smtpdAnvil(cfg)
	must(err)
	c.Etrn, err = etrnFlush(cfg, n.st, maps)
	must(err)
	return c, errors.Join(errs...)
}

// smtpdDNSConfig reads the parameters of smtpd's DNS restrictions and its
// client name lookup. disable_dns_lookups and smtp_host_lookup concern the
// SMTP client only: Postfix's smtpd ignores them, and so does this.
func smtpdDNSConfig(cfg *config.Config, res *rewrite.Resolver) (smtpd.DNSConfig, error) {
	var errs []error
	d := smtpd.DNSConfig{
		MapsRBLDomains:               cfg.List("maps_rbl_domains"),
		DefaultRBLReply:              cfg.Get("default_rbl_reply"),
		RBLReplyMaps:                 cfg.List("rbl_reply_maps"),
		UnknownHeloTempfailAction:    cfg.Get("unknown_helo_hostname_tempfail_action"),
		UnknownAddressTempfailAction: cfg.Get("unknown_address_tempfail_action"),
		FinalDestination: func(domain string) bool {
			c, _ := res.ClassOf(context.Background(), domain)
			return c == rewrite.ClassLocal || c == rewrite.ClassVirtual || c == rewrite.ClassAlias
		},
		IsLocal: res.IsLocalDomain,
	}
	lookup, err := cfg.Bool("smtpd_peername_lookup")
	errs = append(errs, err)
	d.NoPeernameLookup = !lookup
	if nets := cfg.List("permit_mx_backup_networks"); len(nets) > 0 {
		d.PermitMXBackupNetworks, err = matchlist.ParseNetworks(nets)
		if err != nil {
			errs = append(errs, fmt.Errorf("permit_mx_backup_networks: %w", err))
		}
	}
	d.Resolver, err = dnsq.System()
	errs = append(errs, err)
	return d, errors.Join(errs...)
}

// Reload re-reads main.cf and master.cf's overrides for SIGHUP: new SMTP
// sessions use the new settings; connections are not dropped. Listeners,
// the database and the qmgr keep their start-up settings.
func (n *Node) Reload() error {
	cfg, err := config.Load(n.opts.ConfigDir)
	if err != nil {
		return err
	}
	if err := cfg.Check(); err != nil {
		return err
	}
	if err := unsupportedContentChecks(cfg); err != nil {
		return err
	}
	// Tables are opened anew so that edited files and .cf settings count.
	maps := n.checkMaps(context.Background(), cfg)
	res, err := newResolver(cfg, maps)
	if err != nil {
		maps.Close()
		return err
	}
	var cfgs []smtpd.Config
	for _, svc := range n.services {
		c, err := n.smtpdConfig(cfg.With(svc.Overrides), res, maps)
		if err == nil {
			err = serviceLimits(&c, cfg, svc)
		}
		if err != nil {
			maps.Close()
			return fmt.Errorf("service %s: %w", svc.Name, err)
		}
		cfgs = append(cfgs, c)
	}
	for i, srv := range n.servers {
		if err := srv.SetConfig(cfgs[i]); err != nil {
			maps.Close()
			return fmt.Errorf("service %s: %w", n.services[i].Name, err)
		}
	}
	// Sessions that started before the reload keep using the old tables
	// until they end; closing them now would fail their lookups, so the old
	// opener stays open (its tables are few and shared).
	n.oldMaps = append(n.oldMaps, n.maps)
	n.maps = maps
	n.log.Printf("master", "reload -- configuration %s", n.opts.ConfigDir)
	return nil
}

// checkMaps opens every lookup table that main.cf names and probes it once,
// logging each failure: a wrong file, column or table shows at start-up, not
// as a 451 at the first RCPT. A failing table does not stop the node (its
// database may be down only for now).
func (n *Node) checkMaps(ctx context.Context, cfg *config.Config) *mapopen.Opener {
	var errs []error
	dur := func(name string) time.Duration {
		d, err := cfg.Duration(name)
		errs = append(errs, err)
		return d
	}
	o := &mapopen.Opener{
		Store:       n.st,
		CacheTTL:    dur("lookup_cache_time"),
		NegativeTTL: dur("lookup_negative_cache_time"),
		Warnf:       func(f string, a ...any) { n.log.Printf("master", "warning: "+f, a...) },
	}
	_, checkErrs := mapopen.Check(ctx, o, cfg)
	checkErrs = append(checkErrs, checkDefaultRecipientMaps(ctx, o, cfg)...)
	for _, err := range append(errs, checkErrs...) {
		if err != nil {
			n.log.Printf("master", "warning: %v", err)
		}
	}
	return o
}

// Stop drains the node: listeners close, SMTP sessions get until ctx's
// deadline to finish, the qmgr releases unstarted work and lets running
// deliveries finish, and the store closes.
func (n *Node) Stop(ctx context.Context) error {
	var errs []error
	for _, srv := range n.servers {
		errs = append(errs, srv.Shutdown(ctx))
	}
	n.serveWG.Wait()
	n.stopLocal()
	n.cancel()
	errs = append(errs, <-n.qmgrDone)
	n.smtpTr.Close()
	n.lmtpTr.Close()
	n.sasl.close()
	for _, o := range n.oldMaps {
		errs = append(errs, o.Close())
	}
	errs = append(errs, n.maps.Close(), n.st.Close())
	n.log.Printf("master", "terminating on signal 15")
	if n.logFile != nil {
		n.logFile.Close()
	}
	return errors.Join(errs...)
}

// Store is the node's store (for tests and tools).
func (n *Node) Store() store.Store { return n.st }

// nodeName is the lease owner: host, pid and a random part, so that a node
// restarted with the same pid never takes over a dead one's leases early.
func nodeName(host string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func interfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// redact hides a password in a database URL for error messages.
func redact(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		rest := u[i+3:]
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			if c := strings.IndexByte(rest[:at], ':'); c >= 0 {
				return u[:i+3] + rest[:c] + ":xxx" + rest[at:]
			}
		}
	}
	return u
}

// smtpTLSLevel is smtp_tls_security_level, or when that is empty (Postfix
// 3.7's default) what the older smtp_enforce_tls and smtp_use_tls ask for.
// Levels that verify certificates are not implemented: they get encrypt,
// never less, with a warning; dane gets may, as Postfix's dane does for a
// destination without TLSA records.
func (n *Node) smtpTLSLevel(cfg *config.Config) string {
	level := cfg.Get("smtp_tls_security_level")
	switch {
	case level == "":
		switch {
		case cfg.Get("smtp_enforce_tls") == "yes":
			return smtptransport.TLSEncrypt
		case cfg.Get("smtp_use_tls") == "yes":
			return smtptransport.TLSMay
		}
		return smtptransport.TLSNone
	case level == smtptransport.TLSNone, level == smtptransport.TLSMay, level == smtptransport.TLSEncrypt:
		return level
	case level == "dane":
		return smtptransport.TLSMay
	}
	n.log.Printf("smtp", "warning: smtp_tls_security_level = %s: certificate verification is not implemented; using encrypt", level)
	return smtptransport.TLSEncrypt
}

// unsupportedContentChecks refuses settings sqlmta does not carry out yet
// and whose absence would hurt the mail: milters (mail would pass
// unchecked) and the SMTP client's generic maps (mail would leave with the
// internal addresses they are there to replace, and replies would bounce).
// The node does not start (or reload) rather than ignore them.
func unsupportedContentChecks(cfg *config.Config) error {
	var errs []error
	for _, name := range []string{"smtpd_milters", "non_smtpd_milters"} {
		if len(cfg.List(name)) > 0 {
			errs = append(errs, fmt.Errorf("%s: not supported by sqlmta yet; remove it, or mail would pass unchecked", name))
		}
	}
	for _, name := range []string{"smtp_generic_maps", "lmtp_generic_maps"} {
		if len(cfg.List(name)) > 0 {
			errs = append(errs, fmt.Errorf("%s: not supported by sqlmta yet; remove it, or mail would leave with the addresses it rewrites", name))
		}
	}
	// Routing and TLS policy the admin set per sender or destination:
	// ignored, mail would go another way, or in the clear.
	for _, name := range []string{"sender_dependent_relayhost_maps", "sender_dependent_default_transport_maps", "smtp_tls_policy_maps"} {
		if len(cfg.List(name)) > 0 {
			errs = append(errs, fmt.Errorf("%s: not supported by sqlmta yet; remove it, or mail would not go the way it says", name))
		}
	}
	if v := cfg.List("authorized_submit_users"); len(v) != 1 || v[0] != "static:anyone" {
		errs = append(errs, fmt.Errorf("authorized_submit_users: only static:anyone is supported yet; other values would let every local user submit mail"))
	}
	return errors.Join(errs...)
}

// bindAddress reads smtp_bind_address or smtp_bind_address6: empty, or one
// address of the right family.
func bindAddress(cfg *config.Config, name string, v6 bool, errs *[]error) net.IP {
	v := cfg.Get(name)
	if v == "" {
		return nil
	}
	ip := net.ParseIP(strings.Trim(v, "[]"))
	if ip == nil || (ip.To4() == nil) != v6 {
		*errs = append(*errs, fmt.Errorf("%s: %q is not an IPv%s address", name, v, map[bool]string{false: "4", true: "6"}[v6]))
		return nil
	}
	return ip
}
