package config

import (
	"net"
	"strconv"
	"strings"
)

// Param is one entry of the parameter table: what `postconf -d` shows.
type Param struct {
	Name    string
	Default string // raw, unexpanded, as `postconf -d` prints it
	Unit    byte   // default time unit (s m h d w) for time parameters, else 0
	Desc    string // one line

	// computed marks a default that depends on the host (myhostname,
	// mydomain, mynetworks); Default is then empty in the table.
	computed bool
}

// Defaults returns the parameter table with computed defaults filled in for
// this host, in table order (mtactl conf -d sorts it as it needs).
func Defaults() []Param {
	c := newConfig("")
	out := make([]Param, len(params))
	for i, p := range params {
		if p.computed {
			p.Default, _ = c.Raw(p.Name)
		}
		out[i] = p
	}
	return out
}

// Known reports whether name is a parameter: in sqlmta's table or one that
// Postfix 3.7's postconf knows.
func Known(name string) bool {
	if _, ok := paramIndex[name]; ok {
		return true
	}
	_, ok := postfixIndex[name]
	return ok
}

// params holds Postfix 3.7.11's defaults (Debian build, `postconf -d`) for the
// parameters sqlmta reads, followed by sqlmta's own. Compatibility-dependent
// defaults are kept as Postfix writes them (${{$compatibility_level} <level …})
// so that a main.cf which lowers compatibility_level gets the old behaviour.
//
// compatibility_level: Postfix's built-in default is 0, but every installation
// writes compatibility_level = 3.6 into main.cf, and sqlmta's quick start does
// too. We make 3.6 the default so that a main.cf without it still gets the
// modern defaults (relay_domains empty, mynetworks_style host, …) instead of
// silently becoming an open-ish level-0 relay.
//
// config_directory, data_directory and queue_directory point at sqlmta's own
// directories so that sqlmta never touches a co-installed Postfix's files.
var params = []Param{
	{Name: `compatibility_level`, Default: `3.6`, Desc: `Postfix compatibility level that selects backwards-compatible defaults (sqlmta's default is 3.6, see below)`},       // sqlmta: Postfix has 0
	{Name: `config_directory`, Default: `/etc/sqlmta`, Desc: `Directory holding main.cf and master.cf (set to the -c directory at load time)`},                               // sqlmta: Postfix has /etc/postfix
	{Name: `data_directory`, Default: `/var/lib/sqlmta`, Desc: `Directory for writable data files such as the SQLite database`},                                              // sqlmta: Postfix has /var/lib/postfix
	{Name: `queue_directory`, Default: `/var/spool/sqlmta`, Desc: `Holds the maildrop (local submissions awaiting pickup) and public/pickup; the queue itself lives in SQL`}, // sqlmta: Postfix has /var/spool/postfix
	{Name: `setgid_group`, Default: `postdrop`, Desc: `Group of the set-gid postdrop helper that may write the maildrop`},
	{Name: `mail_owner`, Default: `postfix`, Desc: `Unprivileged account that owns the mail system's files`},
	{Name: `default_privs`, Default: `nobody`, Desc: `Account used for deliveries to external files and commands`},
	{Name: `mail_name`, Default: `Postfix`, Desc: `Mail system name shown in the SMTP banner and in bounces`},
	{Name: `mail_version`, Default: `3.7.11`, Desc: `Version of the Postfix behaviour this configuration follows`},
	{Name: `multi_instance_name`, Default: ``, Desc: `Optional instance name, used in syslog_name`},
	{Name: `syslog_name`, Default: `${multi_instance_name?{$multi_instance_name}:{postfix}}`, Desc: `Prefix of log lines (postfix/smtpd[pid]: …)`},
	{Name: `syslog_facility`, Default: `mail`, Desc: `Syslog facility used when logging to syslog`},
	{Name: `maillog_file`, Default: ``, Desc: `File to log to instead of stderr/syslog (empty: stderr)`},
	{Name: `stress`, Default: ``, Desc: `Set to yes by the daemon while overloaded; selects smaller limits`},
	{Name: `myhostname`, computed: true, Desc: `Fully-qualified host name of this mail system`},
	{Name: `mydomain`, computed: true, Desc: `Internet domain name of this mail system`},
	{Name: `myorigin`, Default: `$myhostname`, Desc: `Domain that locally posted mail appears to come from`},
	{Name: `mydestination`, Default: `$myhostname, localhost.$mydomain, localhost`, Desc: `Domains delivered locally by local_transport`},
	{Name: `mynetworks`, computed: true, Desc: `Trusted client networks (permit_mynetworks)`},
	{Name: `mynetworks_style`, Default: `${{$compatibility_level} <level {2} ? {subnet} : {host}}`, Desc: `How mynetworks is computed when not set: host, subnet or class`},
	{Name: `inet_interfaces`, Default: `all`, Desc: `Addresses the SMTP server listens on`},
	{Name: `inet_protocols`, Default: `all`, Desc: `IP protocols used: ipv4, ipv6 or all`},
	{Name: `proxy_interfaces`, Default: ``, Desc: `Addresses that reach this host through a proxy or NAT`},
	{Name: `relay_domains`, Default: `${{$compatibility_level} <level {2} ? {$mydestination} : {}}`, Desc: `Domains this system relays mail to`},
	{Name: `relayhost`, Default: ``, Desc: `Next-hop for non-local mail (empty: direct MX delivery)`},
	{Name: `recipient_delimiter`, Default: ``, Desc: `Characters that separate a user name from an address extension`},
	{Name: `append_dot_mydomain`, Default: `${{$compatibility_level} <level {1} ? {yes} : {no}}`, Desc: `Append .$mydomain to addresses without a dot in the domain`},
	{Name: `append_at_myorigin`, Default: `yes`, Desc: `Append @$myorigin to addresses without a domain`},
	{Name: `allow_percent_hack`, Default: `yes`, Desc: `Rewrite user%domain to user@domain`},
	{Name: `swap_bangpath`, Default: `yes`, Desc: `Rewrite site!user to user@site`},
	{Name: `empty_address_recipient`, Default: `MAILER-DAEMON`, Desc: `Recipient of mail addressed to the null address`},
	{Name: `owner_request_special`, Default: `yes`, Desc: `Give owner-list and list-request addresses special treatment`},
	{Name: `alias_maps`, Default: `hash:/etc/aliases, nis:mail.aliases`, Desc: `Alias tables used by the local delivery agent`},
	{Name: `alias_database`, Default: `hash:/etc/aliases`, Desc: `Alias tables rebuilt by newaliases`},
	{Name: `local_recipient_maps`, Default: `proxy:unix:passwd.byname $alias_maps`, Desc: `Tables of valid local recipients (unknown ones are rejected)`},
	{Name: `virtual_alias_maps`, Default: `$virtual_maps`, Desc: `Address rewriting tables applied to all recipients`},
	{Name: `virtual_maps`, Default: ``, Desc: `Obsolete name of virtual_alias_maps`},
	{Name: `virtual_alias_domains`, Default: `$virtual_alias_maps`, Desc: `Domains whose every address is an alias to another address`},
	{Name: `virtual_alias_recursion_limit`, Default: `1000`, Desc: `Maximal nesting depth of virtual alias expansion`},
	{Name: `virtual_alias_expansion_limit`, Default: `1000`, Desc: `Maximal number of addresses one virtual alias expansion may produce`},
	{Name: `virtual_alias_address_length_limit`, Default: `1000`, Desc: `Maximal length of an address produced by virtual alias expansion`},
	{Name: `virtual_mailbox_domains`, Default: `$virtual_mailbox_maps`, Desc: `Domains delivered by virtual_transport`},
	{Name: `virtual_mailbox_maps`, Default: ``, Desc: `Valid recipients of virtual mailbox domains and their mailbox paths`},
	{Name: `virtual_mailbox_base`, Default: ``, Desc: `Directory prefixed to virtual_mailbox_maps paths`},
	{Name: `virtual_uid_maps`, Default: ``, Desc: `User ID per virtual mailbox`},
	{Name: `virtual_gid_maps`, Default: ``, Desc: `Group ID per virtual mailbox`},
	{Name: `virtual_minimum_uid`, Default: `100`, Desc: `Lowest user ID accepted from virtual_uid_maps`},
	{Name: `virtual_mailbox_limit`, Default: `51200000`, Desc: `Maximal size of a virtual mailbox file in bytes`},
	{Name: `canonical_maps`, Default: ``, Desc: `Address mapping for sender and recipient addresses`},
	{Name: `sender_canonical_maps`, Default: ``, Desc: `Address mapping for sender addresses`},
	{Name: `recipient_canonical_maps`, Default: ``, Desc: `Address mapping for recipient addresses`},
	{Name: `canonical_classes`, Default: `envelope_sender, envelope_recipient, header_sender, header_recipient`, Desc: `Which addresses canonical mapping applies to`},
	{Name: `masquerade_domains`, Default: ``, Desc: `Domains whose subdomains are stripped from addresses`},
	{Name: `masquerade_exceptions`, Default: ``, Desc: `Users that are never masqueraded`},
	{Name: `masquerade_classes`, Default: `envelope_sender, header_sender, header_recipient`, Desc: `Which addresses masquerading applies to`},
	{Name: `propagate_unmatched_extensions`, Default: `canonical, virtual`, Desc: `Lookups that copy an unmatched address extension to the result`},
	{Name: `relocated_maps`, Default: ``, Desc: `Tables of users that moved (rejected with their new address)`},
	{Name: `transport_maps`, Default: ``, Desc: `Per-destination transport and next-hop tables`},
	{Name: `relay_recipient_maps`, Default: ``, Desc: `Valid recipients in relay_domains`},
	{Name: `header_checks`, Default: ``, Desc: `Pattern tables applied to message headers`},
	{Name: `mime_header_checks`, Default: `$header_checks`, Desc: `Pattern tables applied to MIME headers`},
	{Name: `nested_header_checks`, Default: `$header_checks`, Desc: `Pattern tables applied to headers of attached messages`},
	{Name: `body_checks`, Default: ``, Desc: `Pattern tables applied to body lines`},
	{Name: `content_filter`, Default: ``, Desc: `After-queue content filter, transport:nexthop, for every new message`},
	{Name: `always_bcc`, Default: ``, Desc: `Address that gets a blind copy of every new message`},
	{Name: `sender_bcc_maps`, Default: ``, Desc: `Blind copy address per envelope sender`},
	{Name: `recipient_bcc_maps`, Default: ``, Desc: `Blind copy address per envelope recipient`},
	{Name: `message_drop_headers`, Default: `bcc, content-length, resent-bcc, return-path`, Desc: `Headers cleanup removes after header_checks`},
	{Name: `local_header_rewrite_clients`, Default: `permit_inet_interfaces`, Desc: `Clients whose header addresses are rewritten with $myorigin/$mydomain`},
	{Name: `remote_header_rewrite_domain`, Default: ``, Desc: `Domain appended to incomplete header addresses of other clients; empty = their headers are not rewritten`},
	{Name: `home_mailbox`, Default: ``, Desc: `Mailbox path relative to the home directory (ends with / for Maildir)`},
	{Name: `mail_spool_directory`, Default: `/var/mail`, Desc: `Directory of UNIX-style mailboxes (ends with / for Maildir)`},
	{Name: `mailbox_command`, Default: ``, Desc: `Command used for local delivery instead of the built-in one`},
	{Name: `mailbox_size_limit`, Default: `51200000`, Desc: `Maximal size of a local mailbox or Maildir file in bytes`},
	{Name: `forward_path`, Default: `$home/.forward${recipient_delimiter}${extension}, $home/.forward`, Desc: `Where the local delivery agent looks for .forward files`},
	{Name: `allow_mail_to_commands`, Default: `alias, forward`, Desc: `Where deliveries to |command are allowed`},
	{Name: `allow_mail_to_files`, Default: `alias, forward`, Desc: `Where deliveries to /file/name are allowed`},
	{Name: `default_transport`, Default: `smtp`, Desc: `Transport for destinations not matched otherwise`},
	{Name: `local_transport`, Default: `local:$myhostname`, Desc: `Transport for mydestination domains`},
	{Name: `relay_transport`, Default: `relay`, Desc: `Transport for relay_domains`},
	{Name: `virtual_transport`, Default: `virtual`, Desc: `Transport for virtual_mailbox_domains`},
	{Name: `defer_transports`, Default: ``, Desc: `Transports whose deliveries are postponed until a flush`},
	{Name: `smtpd_banner`, Default: `$myhostname ESMTP $mail_name`, Desc: `Text after 220 in the SMTP greeting`},
	{Name: `smtpd_helo_required`, Default: `no`, Desc: `Require HELO or EHLO before MAIL`},
	{Name: `smtpd_delay_reject`, Default: `yes`, Desc: `Delay client, HELO and sender rejections until RCPT`},
	{Name: `smtpd_client_restrictions`, Default: ``, Desc: `Restrictions applied at connect time`},
	{Name: `smtpd_helo_restrictions`, Default: ``, Desc: `Restrictions applied to HELO/EHLO`},
	{Name: `smtpd_sender_restrictions`, Default: ``, Desc: `Restrictions applied to MAIL FROM`},
	{Name: `smtpd_relay_restrictions`, Default: `${{$compatibility_level} <level {1} ? {} : {permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination}}`, Desc: `Relay-control restrictions applied to RCPT TO`},
	{Name: `smtpd_recipient_restrictions`, Default: ``, Desc: `Spam-blocking restrictions applied to RCPT TO`},
	{Name: `smtpd_data_restrictions`, Default: ``, Desc: `Restrictions applied to DATA`},
	{Name: `smtpd_end_of_data_restrictions`, Default: ``, Desc: `Restrictions applied at end of message data`},
	{Name: `smtpd_relay_before_recipient_restrictions`, Default: `${{$compatibility_level} <level {3.6} ? {no} : {yes}}`, Desc: `Evaluate smtpd_relay_restrictions before smtpd_recipient_restrictions`},
	{Name: `smtpd_reject_unlisted_recipient`, Default: `yes`, Desc: `Reject recipients not listed as valid`},
	{Name: `smtpd_reject_unlisted_sender`, Default: `no`, Desc: `Reject senders not listed as valid`},
	{Name: `smtpd_null_access_lookup_key`, Default: `<>`, Desc: `Lookup key used for the null sender in access tables`},
	{Name: `smtpd_recipient_limit`, Default: `1000`, Desc: `Maximal number of recipients per message`},
	{Name: `smtpd_error_sleep_time`, Default: `1s`, Unit: 's', Desc: `Delay before an error reply once soft errors accumulate`},
	{Name: `smtpd_soft_error_limit`, Default: `10`, Desc: `Errors after which replies are delayed`},
	{Name: `smtpd_hard_error_limit`, Default: `${stress?{1}:{20}}`, Desc: `Errors after which the session is dropped`},
	{Name: `smtpd_junk_command_limit`, Default: `${stress?{1}:{100}}`, Desc: `Junk commands (NOOP, VRFY, …) allowed per session`},
	{Name: `smtpd_timeout`, Default: `${stress?{10}:{300}}s`, Unit: 's', Desc: `Time to wait for a client command or data`},
	{Name: `smtpd_tls_security_level`, Default: ``, Desc: `STARTTLS policy of the SMTP server: none, may or encrypt`},
	{Name: `smtpd_tls_cert_file`, Default: ``, Desc: `PEM certificate of the SMTP server`},
	{Name: `smtpd_tls_key_file`, Default: `$smtpd_tls_cert_file`, Desc: `PEM private key of the SMTP server`},
	{Name: `smtpd_tls_eccert_file`, Default: ``, Desc: `PEM ECDSA certificate of the SMTP server`},
	{Name: `smtpd_tls_eckey_file`, Default: `$smtpd_tls_eccert_file`, Desc: `PEM ECDSA private key of the SMTP server`},
	{Name: `smtpd_tls_chain_files`, Default: ``, Desc: `Files with a private key and its certificate chain; used instead of the cert/key files`},
	{Name: `smtpd_tls_protocols`, Default: `>=TLSv1`, Desc: `TLS versions the SMTP server accepts at level may`},
	{Name: `smtpd_tls_mandatory_protocols`, Default: `>=TLSv1`, Desc: `TLS versions the SMTP server accepts at level encrypt`},
	{Name: `smtpd_tls_auth_only`, Default: `no`, Desc: `Offer AUTH only after STARTTLS`},
	{Name: `smtpd_tls_ask_ccert`, Default: `no`, Desc: `Ask TLS clients for a certificate`},
	{Name: `smtpd_tls_req_ccert`, Default: `no`, Desc: `At level encrypt, require a trusted client certificate`},
	{Name: `smtpd_tls_CAfile`, Default: ``, Desc: `CAs whose client certificates are trusted`},
	{Name: `smtpd_tls_CApath`, Default: ``, Desc: `Directory of *.pem CA certificates, as smtpd_tls_CAfile`},
	{Name: `smtpd_tls_fingerprint_digest`, Default: `${{$compatibility_level} <level {3.6} ? {md5} : {sha256}}`, Desc: `Digest of client certificate fingerprints`},
	{Name: `relay_clientcerts`, Default: ``, Desc: `Client certificate fingerprints that permit_tls_clientcerts allows`},
	{Name: `smtpd_tls_wrappermode`, Default: `no`, Desc: `TLS from the first byte (port 465, "submissions")`},
	{Name: `smtpd_tls_loglevel`, Default: `0`, Desc: `1 logs each TLS session the SMTP server establishes`},
	{Name: `smtpd_starttls_timeout`, Default: `${stress?{10}:{300}}s`, Unit: 's', Desc: `Time limit of the TLS handshake`},
	{Name: `smtpd_use_tls`, Default: `no`, Desc: `Obsolete: level may when smtpd_tls_security_level is empty`},
	{Name: `smtpd_enforce_tls`, Default: `no`, Desc: `Obsolete: level encrypt when smtpd_tls_security_level is empty`},
	{Name: `smtpd_sasl_auth_enable`, Default: `no`, Desc: `Offer SMTP AUTH`},
	{Name: `smtpd_sasl_type`, Default: `cyrus`, Desc: `SASL implementation; sqlmta speaks dovecot only`},
	{Name: `smtpd_sasl_path`, Default: `smtpd`, Desc: `Dovecot auth socket: a path (relative to queue_directory) or inet:host:port`},
	{Name: `smtpd_sasl_service`, Default: `smtp`, Desc: `Service name sent to the auth server`},
	{Name: `smtpd_sasl_security_options`, Default: `noanonymous`, Desc: `Mechanisms allowed without TLS (noplaintext, noanonymous, …)`},
	{Name: `smtpd_sasl_tls_security_options`, Default: `$smtpd_sasl_security_options`, Desc: `Mechanisms allowed with TLS`},
	{Name: `smtpd_sasl_mechanism_filter`, Default: `!external, static:rest`, Desc: `Mechanisms shown in the EHLO reply`},
	{Name: `smtpd_sasl_exceptions_networks`, Default: ``, Desc: `Clients not shown AUTH in the EHLO reply`},
	{Name: `smtpd_sasl_authenticated_header`, Default: `no`, Desc: `Name the SASL login in the Received header`},
	{Name: `smtpd_sasl_response_limit`, Default: `12288`, Desc: `Longest SASL response a client may send`},
	{Name: `broken_sasl_auth_clients`, Default: `no`, Desc: `Also announce AUTH= for old Microsoft clients`},
	{Name: `smtpd_sender_login_maps`, Default: ``, Desc: `Sender address → owning SASL logins, for reject_*_sender_login_mismatch`},
	{Name: `smtpd_client_connection_count_limit`, Default: `50`, Desc: `Simultaneous connections allowed per client`},
	{Name: `smtpd_client_connection_rate_limit`, Default: `0`, Desc: `Connections per client per anvil_rate_time_unit (0: no limit)`},
	{Name: `smtpd_client_message_rate_limit`, Default: `0`, Desc: `MAIL FROM commands per client per anvil_rate_time_unit`},
	{Name: `smtpd_client_recipient_rate_limit`, Default: `0`, Desc: `RCPT TO commands per client per anvil_rate_time_unit`},
	{Name: `smtpd_client_auth_rate_limit`, Default: `0`, Desc: `AUTH commands per client per anvil_rate_time_unit`},
	{Name: `smtpd_client_event_limit_exceptions`, Default: `${smtpd_client_connection_limit_exceptions:$mynetworks}`, Desc: `Clients the connection and rate limits do not apply to`},
	{Name: `anvil_rate_time_unit`, Default: `60s`, Unit: 's', Desc: `Time unit of the client rate limits`},
	{Name: `strict_rfc821_envelopes`, Default: `no`, Desc: `Require <> around MAIL FROM and RCPT TO addresses`},
	{Name: `smtputf8_enable`, Default: `${{$compatibility_level} <level {1} ? {no} : {yes}}`, Desc: `Offer SMTPUTF8`},
	{Name: `disable_vrfy_command`, Default: `no`, Desc: `Disable the VRFY command`},
	{Name: `parent_domain_matches_subdomains`, Default: `debug_peer_list,fast_flush_domains,mynetworks,permit_mx_backup_networks,qmqpd_authorized_clients,relay_domains,smtpd_access_maps`, Desc: `Features where a domain name also matches its subdomains`},
	{Name: `debug_peer_list`, Default: ``, Desc: `Clients for which logging is raised to debug_peer_level`},
	{Name: `debug_peer_level`, Default: `2`, Desc: `Logging level added for clients in debug_peer_list`},
	{Name: `fast_flush_domains`, Default: `$relay_domains`, Desc: `Destinations eligible for ETRN / fast flush`},
	{Name: `permit_mx_backup_networks`, Default: ``, Desc: `Networks whose primary MX permit_mx_backup accepts`},
	{Name: `qmqpd_authorized_clients`, Default: ``, Desc: `Clients allowed to use the QMQP service`},
	{Name: `message_size_limit`, Default: `10240000`, Desc: `Maximal message size in bytes`},
	{Name: `line_length_limit`, Default: `2048`, Desc: `Maximal line length before a line is split`},
	{Name: `header_size_limit`, Default: `102400`, Desc: `Maximal size of one message header in bytes`},
	{Name: `bounce_size_limit`, Default: `50000`, Desc: `Maximal size of original message text returned in a bounce`},
	{Name: `queue_minfree`, Default: `0`, Desc: `Free space the queue must keep (0: only the 1.5 x message_size_limit rule)`},
	{Name: `hopcount_limit`, Default: `50`, Desc: `Maximal number of Received: headers before mail is bounced as looping`},
	{Name: `duplicate_filter_limit`, Default: `1000`, Desc: `Number of recent addresses remembered to remove duplicates`},
	{Name: `reject_code`, Default: `554`, Desc: `Reply code for reject restrictions`},
	{Name: `defer_code`, Default: `450`, Desc: `Reply code for defer restrictions`},
	{Name: `access_map_reject_code`, Default: `554`, Desc: `Reply code for REJECT in access tables`},
	{Name: `access_map_defer_code`, Default: `450`, Desc: `Reply code for DEFER in access tables`},
	{Name: `relay_domains_reject_code`, Default: `554`, Desc: `Reply code for unauthorized relaying`},
	{Name: `maps_rbl_reject_code`, Default: `554`, Desc: `Reply code for DNSBL rejections`},
	{Name: `maps_rbl_domains`, Default: ``, Desc: `Obsolete DNSBL list used by reject_maps_rbl`},
	{Name: `rbl_reply_maps`, Default: ``, Desc: `Tables of DNSBL reply templates, keyed by DNSBL domain`},
	{Name: `unknown_address_tempfail_action`, Default: `$reject_tempfail_action`, Desc: `Action when reject_unknown_*_domain fails temporarily`},
	{Name: `unknown_helo_hostname_tempfail_action`, Default: `$reject_tempfail_action`, Desc: `Action when reject_unknown_helo_hostname fails temporarily`},
	{Name: `smtpd_peername_lookup`, Default: `yes`, Desc: `Look up the SMTP client's host name`},
	{Name: `default_rbl_reply`, Default: `$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}`, Desc: `Template of the DNSBL rejection text`},
	{Name: `unknown_client_reject_code`, Default: `450`, Desc: `Reply code for reject_unknown_client_hostname`},
	{Name: `invalid_hostname_reject_code`, Default: `501`, Desc: `Reply code for reject_invalid_helo_hostname`},
	{Name: `unknown_hostname_reject_code`, Default: `450`, Desc: `Reply code for reject_unknown_helo_hostname`},
	{Name: `non_fqdn_reject_code`, Default: `504`, Desc: `Reply code for reject_non_fqdn_* restrictions`},
	{Name: `unknown_address_reject_code`, Default: `450`, Desc: `Reply code for reject_unknown_sender/recipient_domain`},
	{Name: `unknown_local_recipient_reject_code`, Default: `550`, Desc: `Reply code for unknown local recipients`},
	{Name: `unknown_relay_recipient_reject_code`, Default: `550`, Desc: `Reply code for unknown relay recipients`},
	{Name: `unknown_virtual_alias_reject_code`, Default: `550`, Desc: `Reply code for unknown virtual alias recipients`},
	{Name: `unknown_virtual_mailbox_reject_code`, Default: `550`, Desc: `Reply code for unknown virtual mailbox recipients`},
	{Name: `unverified_recipient_reject_code`, Default: `450`, Desc: `Reply code for failed recipient verification`},
	{Name: `unverified_sender_reject_code`, Default: `450`, Desc: `Reply code for failed sender verification`},
	{Name: `plaintext_reject_code`, Default: `450`, Desc: `Reply code when TLS is required but not used`},
	{Name: `multi_recipient_bounce_reject_code`, Default: `550`, Desc: `Reply code for reject_multi_recipient_bounce`},
	{Name: `reject_tempfail_action`, Default: `defer_if_permit`, Desc: `Action when a restriction fails temporarily`},
	{Name: `deliver_lock_attempts`, Default: `20`, Desc: `Attempts to lock a mailbox file before giving up`},
	{Name: `deliver_lock_delay`, Default: `1s`, Unit: 's', Desc: `Delay between attempts to lock a mailbox file`},
	{Name: `fork_attempts`, Default: `5`, Desc: `Attempts to start a process before giving up`},
	{Name: `fork_delay`, Default: `1s`, Unit: 's', Desc: `Delay between attempts to start a process`},
	{Name: `queue_run_delay`, Default: `300s`, Unit: 's', Desc: `Interval between deferred queue scans`},
	{Name: `minimal_backoff_time`, Default: `300s`, Unit: 's', Desc: `Minimal delay between delivery attempts of deferred mail`},
	{Name: `maximal_backoff_time`, Default: `4000s`, Unit: 's', Desc: `Maximal delay between delivery attempts of deferred mail`},
	{Name: `maximal_queue_lifetime`, Default: `5d`, Unit: 'd', Desc: `Age after which undeliverable mail is bounced`},
	{Name: `bounce_queue_lifetime`, Default: `5d`, Unit: 'd', Desc: `Age after which an undeliverable bounce is discarded`},
	{Name: `delay_warning_time`, Default: `0h`, Unit: 'h', Desc: `Age after which the sender is warned of a delay (0: never)`},
	{Name: `soft_bounce`, Default: `no`, Desc: `Turn permanent delivery errors into temporary ones (testing aid)`},
	{Name: `notify_classes`, Default: `resource, software`, Desc: `Problem classes reported to the postmaster`},
	{Name: `bounce_notice_recipient`, Default: `postmaster`, Desc: `Recipient of bounce notices to the postmaster`},
	{Name: `2bounce_notice_recipient`, Default: `postmaster`, Desc: `Recipient of undeliverable bounces`},
	{Name: `delay_notice_recipient`, Default: `postmaster`, Desc: `Recipient of delay notices to the postmaster`},
	{Name: `error_notice_recipient`, Default: `postmaster`, Desc: `Recipient of protocol and resource error notices`},
	{Name: `smtpd_history_flush_threshold`, Default: `100`, Desc: `SMTP session lines kept for a postmaster notice before HELO, EHLO, RSET or end of data flush them`},
	{Name: `enable_long_queue_ids`, Default: `no`, Desc: `Use long, non-repeating queue IDs`},
	{Name: `default_process_limit`, Default: `100`, Desc: `Default maximal number of processes per service`},
	{Name: `default_destination_concurrency_limit`, Default: `20`, Desc: `Default maximal parallel deliveries per destination`},
	{Name: `initial_destination_concurrency`, Default: `5`, Desc: `Initial parallel deliveries per destination (slow start)`},
	{Name: `default_destination_concurrency_failed_cohort_limit`, Default: `1`, Desc: `Failed delivery cohorts before a destination is marked dead`},
	{Name: `default_destination_concurrency_positive_feedback`, Default: `1`, Desc: `Concurrency increase per delivery that reached the destination`},
	{Name: `default_destination_concurrency_negative_feedback`, Default: `1`, Desc: `Concurrency decrease per failure to reach the destination`},
	{Name: `default_destination_recipient_limit`, Default: `50`, Desc: `Default maximal recipients per delivery`},
	{Name: `local_destination_concurrency_limit`, Default: `2`, Desc: `Maximal parallel local deliveries per recipient`},
	{Name: `local_destination_recipient_limit`, Default: `1`, Desc: `Maximal recipients per local delivery`},
	{Name: `smtp_destination_recipient_limit`, Default: `$default_destination_recipient_limit`, Desc: `Maximal recipients per SMTP delivery`},
	{Name: `smtp_destination_concurrency_limit`, Default: `$default_destination_concurrency_limit`, Desc: `Maximal parallel SMTP deliveries per destination`},
	{Name: `qmgr_message_recipient_limit`, Default: `20000`, Desc: `Maximal in-memory recipients of the queue manager`},
	{Name: `qmgr_message_active_limit`, Default: `20000`, Desc: `Maximal messages in the active queue`},
	{Name: `transport_retry_time`, Default: `60s`, Unit: 's', Desc: `Delay before retrying a transport that failed`},
	{Name: `command_time_limit`, Default: `1000s`, Unit: 's', Desc: `Time limit for delivery to external commands`},
	{Name: `smtp_connect_timeout`, Default: `30s`, Unit: 's', Desc: `Time limit for an outbound TCP connection`},
	{Name: `smtp_helo_timeout`, Default: `300s`, Unit: 's', Desc: `Time limit for the greeting and HELO/EHLO reply`},
	{Name: `smtp_mail_timeout`, Default: `300s`, Unit: 's', Desc: `Time limit for the MAIL FROM reply`},
	{Name: `smtp_rcpt_timeout`, Default: `300s`, Unit: 's', Desc: `Time limit for the RCPT TO reply`},
	{Name: `smtp_data_init_timeout`, Default: `120s`, Unit: 's', Desc: `Time limit for the DATA reply`},
	{Name: `smtp_data_xfer_timeout`, Default: `180s`, Unit: 's', Desc: `Time limit for sending message content`},
	{Name: `smtp_data_done_timeout`, Default: `600s`, Unit: 's', Desc: `Time limit for the reply to the final "."`},
	{Name: `smtp_quit_timeout`, Default: `300s`, Unit: 's', Desc: `Time limit for the QUIT reply`},
	{Name: `smtp_helo_name`, Default: `$myhostname`, Desc: `Host name sent in HELO/EHLO by the SMTP client`},
	{Name: `smtp_connection_cache_time_limit`, Default: `2s`, Unit: 's', Desc: `How long an idle SMTP client connection is kept for reuse`},
	{Name: `smtp_mx_address_limit`, Default: `5`, Desc: `Maximal number of MX addresses tried per delivery`},
	{Name: `smtp_mx_session_limit`, Default: `2`, Desc: `Maximal number of SMTP sessions tried per delivery`},
	{Name: `always_add_missing_headers`, Default: `no`, Desc: `Add missing From, Date, Message-Id headers for mail from any client, not only local ones`},
	{Name: `smtp_tls_security_level`, Default: ``, Desc: `STARTTLS policy of the SMTP client: none, may, encrypt, …`},
	{Name: `smtp_sasl_auth_enable`, Default: `no`, Desc: `SMTP AUTH in the SMTP client, for servers (a smarthost) that ask for it`},
	{Name: `smtp_sasl_password_maps`, Default: ``, Desc: `Client credentials, username:password, by sender (with smtp_sender_dependent_authentication), server host name or nexthop`},
	{Name: `smtp_sasl_security_options`, Default: `noplaintext, noanonymous`, Desc: `Mechanisms the SMTP client may use without TLS; the default rules out PLAIN and LOGIN`},
	{Name: `smtp_sasl_tls_security_options`, Default: `$smtp_sasl_security_options`, Desc: `Mechanisms the SMTP client may use over TLS`},
	{Name: `smtp_sasl_mechanism_filter`, Default: ``, Desc: `Server mechanisms the SMTP client considers (empty: all)`},
	{Name: `smtp_sasl_auth_soft_bounce`, Default: `yes`, Desc: `Defer, not bounce, mail when the server refuses AUTH with 5xx`},
	{Name: `smtp_sasl_type`, Default: `cyrus`, Desc: `SASL implementation of the SMTP client; sqlmta's mechanisms (PLAIN, LOGIN, CRAM-MD5) are built in`},
	{Name: `smtp_sender_dependent_authentication`, Default: `no`, Desc: `Look up SMTP client credentials by sender address first`},
	{Name: `smtp_dns_support_level`, Default: ``, Desc: `DNS use of the SMTP client: disabled, enabled, dnssec`},
	{Name: `disable_dns_lookups`, Default: `no`, Desc: `Obsolete: disable MX lookups (see smtp_dns_support_level)`},
	{Name: `smtp_fallback_relay`, Default: `$fallback_relay`, Desc: `Relays tried when the primary destination fails`},
	{Name: `smtp_bind_address`, Default: ``, Desc: `Local IPv4 address for outbound SMTP`},
	{Name: `smtp_bind_address6`, Default: ``, Desc: `Local IPv6 address for outbound SMTP`},
	{Name: `lmtp_connect_timeout`, Default: `0s`, Unit: 's', Desc: `Time limit for an outbound LMTP connection (0: none)`},
	{Name: `lmtp_lhlo_name`, Default: `$myhostname`, Desc: `Host name sent in LHLO`},
	{Name: `lmtp_destination_recipient_limit`, Default: `$default_destination_recipient_limit`, Desc: `Maximal recipients per LMTP delivery`},
	{Name: `ignore_mx_lookup_error`, Default: `no`, Desc: `Treat a failed MX lookup as no MX instead of deferring`},
	{Name: `fallback_relay`, Default: ``, Desc: `Obsolete name of smtp_fallback_relay`},

	// sqlmta's own parameters.
	{Name: `database_url`, Default: `sqlite:$data_directory/sqlmta.db`, Desc: `Queue and table database: postgres://…, mysql://user:pass@tcp(host:port)/db or sqlite:/path/file.db`},
	{Name: `lookup_cache_time`, Default: `1s`, Unit: 's', Desc: `How long a found answer of an SQL or managed lookup table is reused before the database is asked again`},
	{Name: `lookup_negative_cache_time`, Default: `1s`, Unit: 's', Desc: `How long a "not found" answer of an SQL or managed lookup table is reused`},
	{Name: `qmgr_lease_time`, Default: `300s`, Unit: 's', Desc: `How long a node holds claimed recipients before another node may take them over`},
	{Name: `qmgr_claim_batch_size`, Default: `256`, Desc: `Maximal number of due recipients claimed from the database in one transaction`},
	{Name: `qmgr_poll_interval`, Default: `1s`, Unit: 's', Desc: `Interval between queue polls when the database cannot notify (MySQL, SQLite)`},
}

var paramIndex = func() map[string]*Param {
	m := make(map[string]*Param, len(params))
	for i := range params {
		m[params[i].Name] = &params[i]
	}
	return m
}()

// computeDefault returns the host-dependent default of name. It expands
// other parameters through e so that loop detection spans the computation
// (mydomain = $myhostname with a dot-less host name is a loop, as in Postfix).
func (e *expander) computeDefault(name string) (string, error) {
	switch name {
	case "myhostname":
		return computeMyhostname(e)
	case "mydomain":
		return computeMydomain(e)
	case "mynetworks":
		return computeMynetworks(e)
	}
	return "", nil
}

// computeMyhostname follows Postfix's check_myhostname(): the system host
// name, with .$mydomain (or .localdomain) appended when it has no dot.
func computeMyhostname(e *expander) (string, error) {
	h := e.c.hostname
	if h == "" {
		h = "localhost"
	}
	if strings.Contains(h, ".") {
		return h, nil
	}
	dom := "localdomain"
	if _, ok := e.c.values["mydomain"]; ok {
		d, err := e.param("mydomain")
		if err != nil {
			return h + "." + dom, err
		}
		if d != "" {
			dom = d
		}
	}
	return h + "." + dom, nil
}

// computeMydomain is $myhostname minus its first label, or localdomain.
func computeMydomain(e *expander) (string, error) {
	h, err := e.param("myhostname")
	if err != nil {
		return "localdomain", err
	}
	if _, rest, ok := strings.Cut(h, "."); ok && rest != "" {
		return rest, nil
	}
	return "localdomain", nil
}

// computeMynetworks derives mynetworks from mynetworks_style and the
// interface addresses, as Postfix does: host → each address as /32 or /128,
// subnet → each interface's network, class → the classful network (IPv4) or
// subnet (IPv6). IPv4 entries come first; inet_protocols filters families.
func computeMynetworks(e *expander) (string, error) {
	style, err := e.param("mynetworks_style")
	if err != nil {
		return "127.0.0.0/8 [::1]/128", err
	}
	protos, err := e.param("inet_protocols")
	if err != nil {
		return "127.0.0.0/8 [::1]/128", err
	}
	v4, v6 := true, true
	if p := strings.ToLower(protos); !strings.Contains(p, "all") {
		v4 = strings.Contains(p, "ipv4")
		v6 = strings.Contains(p, "ipv6")
	}
	addrs, _ := net.InterfaceAddrs()
	if len(addrs) == 0 {
		// No interface list (containers without /proc/net): loopback only.
		addrs = []net.Addr{
			&net.IPNet{IP: net.IPv4(127, 0, 0, 1), Mask: net.CIDRMask(8, 32)},
			&net.IPNet{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
		}
	}
	return mynetworksFor(strings.ToLower(strings.TrimSpace(style)), addrs, v4, v6), nil
}

func mynetworksFor(style string, addrs []net.Addr, v4, v6 bool) string {
	var four, six []string
	seen := map[string]bool{}
	add := func(list *[]string, s string) {
		if !seen[s] {
			seen[s] = true
			*list = append(*list, s)
		}
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if ip4 := ipn.IP.To4(); ip4 != nil {
			if !v4 {
				continue
			}
			ones, _ := ipn.Mask.Size()
			switch style {
			case "host":
				ones = 32
			case "class":
				switch {
				case ip4[0] < 128:
					ones = 8
				case ip4[0] < 192:
					ones = 16
				case ip4[0] < 224:
					ones = 24
				default:
					ones = 32
				}
			}
			n := ip4.Mask(net.CIDRMask(ones, 32))
			add(&four, n.String()+"/"+strconv.Itoa(ones))
			continue
		}
		if !v6 {
			continue
		}
		ones, _ := ipn.Mask.Size()
		if style == "host" {
			ones = 128
		}
		n := ipn.IP.Mask(net.CIDRMask(ones, 128))
		add(&six, "["+n.String()+"]/"+strconv.Itoa(ones))
	}
	return strings.Join(append(four, six...), " ")
}
