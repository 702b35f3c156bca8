package node

import (
	"context"
	"slices"
	"strings"
	"time"

	"sqlmta/config"
	mapopen "sqlmta/mapdrivers/open"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/rewrite"
	"sqlmta/mtad/transport"
	"sqlmta/mtad/transport/errtransport"
	"sqlmta/mtad/transport/lmtp"
)

// addTransports registers lmtp, error, retry and discard, and hands local
// mailboxes to mailbox_transport when it is set (hosting providers point it
// at Dovecot: mailbox_transport = lmtp:unix:private/dovecot-lmtp). The lmtp
// transport is returned so that Stop can close its cached sessions.
func addTransports(cfg *config.Config, ts map[string]transport.Transport, errs *[]error) *lmtp.Transport {
	dur := func(name string) time.Duration {
		d, err := cfg.Duration(name)
		*errs = append(*errs, err)
		return d
	}
	lt := lmtp.New(lmtp.Config{
		LHLOName:        cfg.Get("lmtp_lhlo_name"),
		Hostname:        cfg.Get("myhostname"),
		QueueDirectory:  cfg.Get("queue_directory"),
		ConnectTimeout:  dur("lmtp_connect_timeout"),
		LHLOTimeout:     dur("lmtp_lhlo_timeout"),
		MailTimeout:     dur("lmtp_mail_timeout"),
		RcptTimeout:     dur("lmtp_rcpt_timeout"),
		DataInitTimeout: dur("lmtp_data_init_timeout"),
		DataXferTimeout: dur("lmtp_data_xfer_timeout"),
		DataDoneTimeout: dur("lmtp_data_done_timeout"),
		RsetTimeout:     dur("lmtp_rset_timeout"),
		QuitTimeout:     dur("lmtp_quit_timeout"),
		IdleTimeout:     dur("lmtp_connection_cache_time_limit"),
	})
	ts["lmtp"] = lt
	ts[rewrite.RetryTransport] = errtransport.Retry()
	ts["error"] = errtransport.Error()
	ts["discard"] = errtransport.Discard()
	if mt := strings.TrimSpace(cfg.Get("mailbox_transport")); mt != "" {
		name, hop, _ := strings.Cut(mt, ":")
		if t := ts[name]; t != nil {
			ts["local"] = viaTransport{t: t, nexthop: hop}
		}
	}
	return lt
}

// viaTransport delivers through another transport with a fixed next hop,
// as local(8) does with mailbox_transport.
type viaTransport struct {
	t       transport.Transport
	nexthop string
}

func (v viaTransport) Deliver(ctx context.Context, d *transport.Delivery) []transport.Result {
	if v.nexthop == "" {
		return v.t.Deliver(ctx, d)
	}
	dd := *d
	dd.Nexthop = v.nexthop
	return v.t.Deliver(ctx, &dd)
}

// transportMaps is transport_maps for the qmgr's resolver, its tables opened
// through the node's opener at each lookup; nil when the parameter is empty.
func transportMaps(cfg *config.Config, maps *mapopen.Opener, log *maillog.Logger) *rewrite.TransportMaps {
	specs := cfg.List("transport_maps")
	if len(specs) == 0 {
		return nil
	}
	return &rewrite.TransportMaps{
		Specs:     specs,
		Open:      maps.Open,
		Parent:    slices.Contains(cfg.List("parent_domain_matches_subdomains"), "transport_maps"),
		Delimiter: cfg.Get("recipient_delimiter"),
		Warnf:     func(f string, a ...any) { log.Printf("trivial-rewrite", "warning: "+f, a...) },
	}
}
