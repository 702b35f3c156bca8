// Package smtpd is sqlmta's SMTP server. It runs its own ESMTP command loop,
// because the replies are part of the contract and must be Postfix 3.7's
// word for word (go-smtp's server writes its own texts). Mail goes through a
// Submitter; 250 is sent only after Submit reports the message committed.
package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"sqlmta/mapdrivers"
	"sqlmta/mtad/envelope"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/matchlist"
	"sqlmta/mtad/rewrite"
)

// Submitter hands a received message to cleanup and the queue.
type Submitter interface {
	// Submit runs cleanup and enqueues the message; it returns nil only after
	// the message is durably committed. A *reply.Error is sent to the client
	// as is; any other error → "451 4.3.0 Error: queue file write error".
	Submit(ctx context.Context, env *envelope.Envelope, content io.Reader) error
}

// Config is smtpd's part of main.cf, already parsed and expanded.
type Config struct {
	Hostname         string // myhostname (220/250/221/421 replies)
	Banner           string // expanded smtpd_banner, sent as "220 <Banner>"; "" = "<Hostname> ESMTP"
	MessageSizeLimit int64  // message_size_limit (0 = unlimited)
	RecipientLimit   int    // smtpd_recipient_limit (0 = unlimited)
	HeloRequired     bool   // smtpd_helo_required
	ErrorSleep       time.Duration
	SoftErrorLimit   int           // smtpd_soft_error_limit (0 = default 10)
	HardErrorLimit   int           // smtpd_hard_error_limit (0 = default 20)
	Timeout          time.Duration // smtpd_timeout per read (0 = 300s)
	LineLengthLimit  int           // line_length_limit: longer command lines are truncated (0 = 2048)

	MyNetworks *matchlist.Networks
	// RelayRestrictions nil means the compatibility-level-3.6 default
	// (permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination);
	// a non-nil empty slice means an empty list.
	RelayRestrictions     []string
	RecipientRestrictions []string
	// AuthDestination reports whether mail to this recipient domain
	// (lowercased, no trailing dot) is for a domain we are final destination
	// or relay for: reject_unauth_destination. An error (a domain table
	// that cannot be read) answers 451 4.3.0 Temporary lookup failure.
	AuthDestination func(ctx context.Context, domain string) (bool, error)

	// The other restriction lists (nil or empty = empty list, Postfix's
	// default for each of them).
	ClientRestrictions    []string // smtpd_client_restrictions
	HeloRestrictions      []string // smtpd_helo_restrictions
	SenderRestrictions    []string // smtpd_sender_restrictions
	DataRestrictions      []string // smtpd_data_restrictions
	EndOfDataRestrictions []string // smtpd_end_of_data_restrictions
	EtrnRestrictions      []string // smtpd_etrn_restrictions
	// RestrictionClasses maps each name in smtpd_restriction_classes to
	// the list its parameter holds.
	RestrictionClasses map[string][]string
	// NoDelayReject is smtpd_delay_reject = no: client, helo and sender
	// restrictions run at connect, HELO and MAIL instead of at RCPT.
	NoDelayReject bool
	// OpenMap opens a "type:name" table named in a restriction list. It is
	// called once per table when the configuration is compiled; smtpd does
	// not close the maps (the opener owns them).
	OpenMap func(ctx context.Context, spec string) (mapdrivers.Map, error)
	// AccessParentDot is true when smtpd_access_maps is not in
	// parent_domain_matches_subdomains: parent keys are then ".example.com".
	AccessParentDot    bool
	RecipientDelimiter string // recipient_delimiter (each character is a delimiter)
	NullAccessKey      string // smtpd_null_access_lookup_key ("" = "<>")
	// Qualify puts an address into the form trivial-rewrite gives it
	// (user → user@$myorigin) before access-map lookups; nil leaves it.
	Qualify func(addr string) string
	// RelayDomains matches a client host name for check_relay_domains.
	RelayDomains func(name string) bool
	// InetInterfaces reports whether an IP is one of ours
	// (permit_inet_interfaces); nil means the host's interface addresses.
	InetInterfaces        func(ip netip.Addr) bool
	AllowUntrustedRouting bool // allow_untrusted_routing
	SoftBounce            bool // soft_bounce: every 5xx reject becomes 4xx
	// Validate checks an address (standard form) against the recipient
	// tables for reject_unlisted_recipient/_sender; nil: no such check.
	Validate func(ctx context.Context, addr string, sender bool) (rewrite.Validity, error)
	// Etrn flushes deferred mail for a domain (ETRN); allowed is false for a
	// domain not in fast_flush_domains. nil: ETRN answers 458.
	Etrn                    func(ctx context.Context, domain string) (allowed bool, err error)
	RejectUnlistedRecipient bool // smtpd_reject_unlisted_recipient
	RejectUnlistedSender    bool // smtpd_reject_unlisted_sender
	HideUnknownTable        bool // show_user_unknown_table_name = no
	Codes                   Codes
	DNS                     DNSConfig // DNS restrictions and the client name lookup (dns.go)
	// Policy holds the smtpd_policy_service_* parameters for
	// check_policy_service (policy.go).
	Policy PolicyDefaults
	// Verify is address verification for reject_unverified_recipient and
	// reject_unverified_sender (verify.go); nil: they answer 451 4.3.5.
	Verify VerifyFunc
	// UnverifiedRecipientTempfailAction, UnverifiedSenderTempfailAction:
	// what a 4xx verification result does (defer_if_permit or defer).
	UnverifiedRecipientTempfailAction string
	UnverifiedSenderTempfailAction    string
	// UnverifiedRecipientReason, UnverifiedSenderReason replace the
	// probe's text in a reject when set (unverified_*_reject_reason).
	UnverifiedRecipientReason string
	UnverifiedSenderReason    string

	// TLS is STARTTLS and its policy (tls.go); the zero value offers none.
	TLS TLSConfig
	// SASL is SMTP AUTH (auth.go); the zero value offers none.
	SASL SASLConfig
	// Anvil is the per-client rate and concurrency limits (anvil.go); the
	// zero value sets none.
	Anvil AnvilConfig
	// SenderLoginMaps is smtpd_sender_login_maps: sender address → the
	// SASL logins that own it, for the *_sender_login_mismatch restrictions.
	SenderLoginMaps []string
	// LocalpartLookup says whether a domain is $myorigin or local, where
	// mail_addr_find also tries the bare localpart (nil: never).
	LocalpartLookup func(domain string) bool

	SpoolMemory int64  // DATA kept in memory up to this many bytes (0 = 1 MiB)
	SpoolDir    string // temp files ("" = os.TempDir())
	Log         *maillog.Logger
	Submitter   Submitter

	// ServiceName is the master.cf service name ("smtp", "127.0.0.1:2525"),
	// for the process limit warning.
	ServiceName string
	// ProcessLimit is the service's master.cf maxproc (default_process_limit
	// for "-"): at most this many sessions per listener; further clients
	// wait in the listen backlog, as with Postfix's master. 0 = no limit.
	ProcessLimit int
	// QueueMinFree is queue_minfree: MAIL FROM answers 452 4.3.1 when the
	// file system of SpoolDir has no more than this many bytes free, or
	// less than 1.5 × MessageSizeLimit (limits.go).
	QueueMinFree int64

	// NotifyClasses is notify_classes: the error classes for which the
	// postmaster gets a transcript of the session (notify.go). nil or
	// empty: none (Postfix's default list is "resource, software"; the
	// caller passes it).
	NotifyClasses        []string
	ErrorNoticeRecipient string // error_notice_recipient ("" = "postmaster")
	DoubleBounceSender   string // double_bounce_sender ("" = "double-bounce"), @Hostname is added
	MailName             string // mail_name ("" = "Postfix"), in the notice's subject
	HistoryFlushLimit    int    // smtpd_history_flush_threshold (0 = 100)
	// Notify takes the postmaster notices; nil = Submitter. Postfix's
	// notices bypass content_filter, so the caller may pass a cleanup
	// service without one.
	Notify Submitter

	// statfs reports the free space of a directory's file system; nil =
	// syscall.Statfs. Tests set it.
	statfs func(dir string) (blockSize, blocksFree uint64, err error)
}

// compiled is a validated Config; sessions keep the one they started with,
// so a reload never changes the rules in the middle of a transaction.
type compiled struct {
	Config
	relay, rcpt          []string
	client, helo, sender []string
	data, eod, etrn      []string
	classes              map[string][]string
	maps                 map[string]mapdrivers.Map
	policies             map[string]*policyClient // by check_policy_service argument
	senderLogin          rewrite.Tables           // smtpd_sender_login_maps opened
	relayCerts           rewrite.Tables           // relay_clientcerts opened
	notifyMask           errClass
}

const (
	junkCommandLimit      = 100  // smtpd_junk_command_limit
	recipientOvershootMax = 1000 // smtpd_recipient_overshoot_limit
)

func compile(cfg Config) (*compiled, error) {
	if cfg.Hostname == "" {
		return nil, errors.New("smtpd: Hostname is required")
	}
	if cfg.Submitter == nil {
		return nil, errors.New("smtpd: Submitter is required")
	}
	if cfg.Banner == "" {
		cfg.Banner = cfg.Hostname + " ESMTP"
	}
	if cfg.SoftErrorLimit == 0 {
		cfg.SoftErrorLimit = 10
	}
	if cfg.HardErrorLimit == 0 {
		cfg.HardErrorLimit = 20
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 300 * time.Second
	}
	if cfg.LineLengthLimit == 0 {
		cfg.LineLengthLimit = 2048
	}
	if cfg.SpoolMemory == 0 {
		cfg.SpoolMemory = 1 << 20
	}
	if cfg.NullAccessKey == "" {
		cfg.NullAccessKey = "<>"
	}
	cfg.Codes = cfg.Codes.withDefaults()
	if cfg.ProcessLimit < 0 {
		return nil, fmt.Errorf("smtpd: bad process limit %d", cfg.ProcessLimit)
	}
	mask, err := parseNotifyClasses(cfg.NotifyClasses)
	if err != nil {
		return nil, err
	}
	if cfg.ErrorNoticeRecipient == "" {
		cfg.ErrorNoticeRecipient = "postmaster"
	}
	if cfg.DoubleBounceSender == "" {
		cfg.DoubleBounceSender = "double-bounce"
	}
	if cfg.MailName == "" {
		cfg.MailName = "Postfix"
	}
	if cfg.HistoryFlushLimit <= 0 {
		cfg.HistoryFlushLimit = 100
	}
	if cfg.Notify == nil {
		cfg.Notify = cfg.Submitter
	}
	if cfg.statfs == nil {
		cfg.statfs = statfs
	}
	c, err := compileLists(cfg)
	if err != nil {
		return nil, err
	}
	c.notifyMask = mask
	return c, nil
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("smtpd: server closed")

// Server accepts SMTP connections.
type Server struct {
	cfg  atomic.Pointer[compiled]
	base context.Context // for Submit: not cancelled by a client hang-up

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	slotFree  *sync.Cond // on mu: a session ended, the limit changed or Shutdown began
	wg        sync.WaitGroup
	warned    sync.Map // warnings already logged (warnOnce)
	anvil     anvil    // client rate and concurrency counts (anvil.go)
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	c, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		base:      context.Background(),
		listeners: map[net.Listener]struct{}{},
		sessions:  map[*session]struct{}{},
	}
	s.slotFree = sync.NewCond(&s.mu)
	s.cfg.Store(c)
	if c.QueueMinFree > 0 && c.MessageSizeLimit > 0 && float64(c.QueueMinFree)/spaceMultiplier < float64(c.MessageSizeLimit) {
		c.Log.Printf("smtpd", "warning: queue_minfree(%d) should be at least 1.5*message_size_limit(%d)", c.QueueMinFree, c.MessageSizeLimit)
	}
	return s, nil
}

// SetConfig replaces the configuration for new sessions (SIGHUP reload).
// Sessions already running keep theirs. An invalid cfg is refused and the
// old one stays.
func (s *Server) SetConfig(cfg Config) error {
	c, err := compile(cfg)
	if err != nil {
		return err
	}
	s.cfg.Store(c)
	s.slotFree.Broadcast() // the process limit may have grown
	return nil
}

// Serve accepts connections on ln, one goroutine per connection, until ln
// fails or Shutdown is called (then it returns ErrServerClosed).
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	sl := &slots{}
	for {
		if !s.waitSlot(sl, ln) {
			return ErrServerClosed
		}
		conn, err := ln.Accept()
		if err != nil {
			s.releaseSlot(sl)
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			if isTemporary(err) {
				// Out of file descriptors and the like: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("smtpd: accept: %w", err)
		}
		backoff = 0
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			conn.Close()
			s.releaseSlot(sl)
			return ErrServerClosed
		}
		sess := newSession(s, s.cfg.Load(), conn)
		s.sessions[sess] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			sess.serve()
			s.mu.Lock()
			delete(s.sessions, sess)
			s.mu.Unlock()
			s.releaseSlot(sl)
		}()
	}
}

// isTemporary reports accept errors worth retrying (EMFILE, ENFILE,
// ECONNABORTED report Temporary() although the method is deprecated).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Shutdown stops accepting, then waits for sessions to end until ctx
// expires. After that, idle sessions are closed; a session in the middle of
// DATA finishes its transaction (reads to the final dot, submits, replies)
// and then closes. Shutdown returns ctx.Err() if it had to close sessions.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	s.slotFree.Broadcast() // Serve may wait for a free slot

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for sess := range s.sessions {
		sess.forceClose()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}
