package cleanup

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"strings"

	"sqlmta/mtad/envelope"
	"sqlmta/store"
)

// applyActions carries out HOLD, FILTER and REDIRECT, from smtpd's access
// maps (env) and header_checks (st), on the message about to be queued.
// header_checks come later than smtpd's actions, so theirs win.
//
//   - HOLD puts every recipient on hold until postsuper -H releases it.
//   - FILTER overrides content_filter for the whole message.
//   - REDIRECT replaces all recipients with its address, and overrides
//     FILTER. As Postfix's qmgr does it (qmgr_message_resolve), the first
//     recipient in qmgr's order (domain, then address) is kept, with its
//     original address and DSN settings, and gets the redirect address in
//     standard form; the others are dropped.
func (c *Cleanup) applyActions(m *store.NewMessage, env *envelope.Envelope, st *state, contentFilter string) {
	m.Hold = env.Hold || st.hold != ""
	m.Filter = contentFilter
	if env.Filter != "" {
		m.Filter = env.Filter
	}
	if st.filter != "" {
		m.Filter = st.filter
	}
	redirect := env.Redirect
	if st.redirect != "" {
		redirect = st.redirect
	}
	if redirect == "" || len(m.Recipients) == 0 {
		return
	}
	first := slices.MinFunc(m.Recipients, func(a, b store.NewRecipient) int {
		if c := cmp.Compare(strings.ToLower(store.Domain(a.Address)), strings.ToLower(store.Domain(b.Address))); c != 0 {
			return c
		}
		return strings.Compare(a.Address, b.Address)
	})
	first.Address = c.qualify(redirect)
	m.Recipients = []store.NewRecipient{first}
	m.Filter = ""
}

// bccLookup is sender_bcc_maps or recipient_bcc_maps for addr, with the
// canonical lookup order; a hit adds its address (one only: multiple
// results are not supported) as a BCC recipient. A lookup error fails
// the message for now, as Postfix does.
func (c *Cleanup) bccLookup(ctx context.Context, st *state, m *maps, addr string, bcc func(string)) {
	if m == nil {
		return
	}
	value, _, found, err := c.findAddr(ctx, m, addr)
	if err != nil {
		c.log.Printf("cleanup", "warning: %s: %s map lookup problem for %s -- message not accepted, try again later", st.queueID, m.Title, addr)
		st.errs |= statWrite
		return
	}
	if found && value != "" {
		bcc(value)
	}
}

// headerQualifier decides how this message's header addresses are put
// into standard form: in the local context when the client matches
// local_header_rewrite_clients (mail from pickup always does), else in the
// remote context when remote_header_rewrite_domain is set; nil means the
// headers are not rewritten at all (smtpd_check_rewrite).
func (c *Cleanup) headerQualifier(ctx context.Context, env *envelope.Envelope, clients []string) func(string) string {
	if c.localHeaderClient(ctx, env, clients) {
		return c.qualify
	}
	if c.cfg.RemoteHeaderRewriteDomain != "" && c.cfg.QualifyRemote != nil {
		return c.cfg.QualifyRemote
	}
	return nil
}

// localHeaderClient evaluates local_header_rewrite_clients for the
// client: permit_inet_interfaces, permit_mynetworks, and
// check_address_map type:table or a bare type:table (static:all, or a
// table of client addresses whose values are ignored). SASL and TLS
// client certificates are not known to cleanup and never match.
func (c *Cleanup) localHeaderClient(ctx context.Context, env *envelope.Envelope, clients []string) bool {
	if env.ClientAddr == "" {
		return true // sendmail/pickup and mail the system makes itself
	}
	addr, err := netip.ParseAddr(env.ClientAddr)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for i := 0; i < len(clients); i++ {
		item := clients[i]
		switch strings.ToLower(item) {
		case "permit_inet_interfaces":
			if c.isLocalClient(env.ClientAddr) {
				return true
			}
			continue
		case "permit_mynetworks":
			if c.cfg.MyNetworks != nil && c.cfg.MyNetworks(addr) {
				return true
			}
			continue
		case "permit_sasl_authenticated", "permit_tls_clientcerts", "permit_tls_all_clientcerts":
			continue
		case "check_address_map":
			if i+1 == len(clients) {
				c.log.Printf("cleanup", "warning: local_header_rewrite_clients: missing table after check_address_map")
				return false
			}
			i++
			item = clients[i]
		}
		if !strings.Contains(item, ":") || c.cfg.OpenMap == nil {
			c.log.Printf("cleanup", "warning: local_header_rewrite_clients: unknown restriction: \"%s\"", item)
			continue
		}
		m, err := c.cfg.OpenMap(ctx, item)
		if err == nil {
			var found bool
			if _, found, err = m.Lookup(ctx, addr.String()); found {
				return true
			}
		}
		if err != nil {
			c.log.Printf("cleanup", "warning: local_header_rewrite_clients: %s lookup error for %s: %v", item, addr, err)
		}
	}
	return false
}

// finishHeaders removes the message_drop_headers and, when qualify is not
// nil, rewrites the addresses in address headers.
func (c *Cleanup) finishHeaders(ctx context.Context, hr *hdrRewrite, fields [][]byte) [][]byte {
	out := fields[:0:0]
	for _, f := range fields {
		name, _, ok := strings.Cut(string(f), ":")
		if !ok {
			out = append(out, f)
			continue
		}
		name = strings.ToLower(strings.TrimRight(name, " \t"))
		if slices.ContainsFunc(c.cfg.MessageDropHeaders, func(d string) bool { return strings.EqualFold(d, name) }) {
			continue
		}
		if class := addrHeaders[name]; class != 0 && hr.qualify != nil {
			f = c.rewriteAddrHeader(ctx, hr, class, f)
		}
		out = append(out, f)
	}
	return out
}

// resentHeaders is what cleanup learns of the Resent- headers: whether
// there are any (HDR_OPT_RR), and which of the ones it would add exist.
type resentHeaders struct {
	resent, messageID, date, from bool
}

func scanResent(fields [][]byte) resentHeaders {
	var rs resentHeaders
	for _, f := range fields {
		name, _, ok := strings.Cut(string(f), ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimRight(name, " \t")) {
		case "resent-message-id":
			rs.resent, rs.messageID = true, true
		case "resent-date":
			rs.resent, rs.date = true, true
		case "resent-from":
			rs.resent, rs.from = true, true
		case "resent-bcc", "resent-cc", "resent-reply-to", "resent-sender", "resent-to":
			rs.resent = true
		}
	}
	return rs
}
