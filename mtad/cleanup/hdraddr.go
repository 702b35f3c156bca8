package cleanup

import (
	"context"
	"sqlmta/mtad/rewrite"
	"strings"
)

// Header address rewriting (cleanup_message.c cleanup_rewrite_sender and
// cleanup_rewrite_recip): the addresses in From:, To: and the other
// address headers get the standard form, canonical maps and masquerading
// of their class. A header none of whose addresses changed is left exactly
// as it came; a changed one is rebuilt from its RFC 822 tokens the way
// tok822_externalize writes them, one address per line, and then folded
// like cleanup_fold_header.

// addrHeaders maps each header that holds addresses to its class, 's'
// (header_sender) or 'r' (header_recipient), as Postfix's header_opts.c
// flags them (HDR_OPT_SENDER, HDR_OPT_RECIP).
var addrHeaders = map[string]byte{
	"apparently-to": 'r', "bcc": 'r', "cc": 'r', "resent-bcc": 'r', "resent-cc": 'r', "resent-reply-to": 'r',
	"resent-to": 'r', "to": 'r',
	"disposition-notification-to": 's', "errors-to": 's', "from": 's', "mail-followup-to": 's', "reply-to": 's',
	"resent-from": 's', "resent-sender": 's', "return-path": 's', "return-receipt-to": 's', "sender": 's',
}

// hdrTok is one RFC 822 token of a header value, with its text as written
// (quotes, brackets and parentheses included).
type hdrTok struct {
	kind byte // 'a' atom, 'q' quoted string, 'c' comment, 'd' domain literal, else the special itself
	raw  string
}

// word reports whether t is an atom, quoted string, comment, domain
// literal or address: tok822's non-operators, between which a space goes.
func (t hdrTok) word() bool { return strings.IndexByte("aqcdA", t.kind) >= 0 }

const specials822 = "()<>@,;:\\\".[]"

// scanHeaderTokens is tok822_scan: white space (folding included)
// separates tokens; comments nest; an unterminated quoted string, literal
// or comment runs to the end.
func scanHeaderTokens(s string) []hdrTok {
	var out []hdrTok
	i := 0
	// until returns the end of a delimited token that opened at i.
	until := func(closer byte, nest byte) int {
		depth := 0
		j := i + 1
		for ; j < len(s); j++ {
			switch c := s[j]; {
			case c == '\\':
				j++
			case nest != 0 && c == nest:
				depth++
			case c == closer:
				if depth == 0 {
					return j + 1
				}
				depth--
			}
		}
		return len(s)
	}
	for i < len(s) {
		c := s[i]
		var end int
		var kind byte
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
			continue
		case c == '(':
			kind, end = 'c', until(')', '(')
		case c == '"':
			kind, end = 'q', until('"', 0)
		case c == '[':
			kind, end = 'd', until(']', 0)
		case strings.IndexByte(specials822, c) >= 0 && c != '\\':
			kind, end = c, i+1
		default:
			kind, end = 'a', i
			for end < len(s) {
				ch := s[end]
				if ch == '\\' && end+1 < len(s) {
					end += 2
					continue
				}
				if ch <= ' ' || ch == 0x7f || strings.IndexByte(specials822, ch) >= 0 {
					break
				}
				end++
			}
			if end == i {
				end++ // a lone backslash or control character
			}
		}
		out = append(out, hdrTok{kind: kind, raw: s[i:end]})
		i = end
	}
	return out
}

// hdrNode is one element of a parsed address header: a plain token, or
// (kind 'A') an address whose tokens are in addr.
type hdrNode struct {
	hdrTok
	addr     []hdrTok
	startGrp bool // the ':' that opens a group
}

// parseAddrHeader finds the addresses in a header value: in each
// comma-separated element, what is inside <…>, or else the addr-spec made
// of all the element's tokens but its comments (which tok822 moves after
// the address). An element that is no addr-spec ("Joe Smith") is left as
// it is.
func parseAddrHeader(toks []hdrTok) []hdrNode {
	var out []hdrNode
	var seg []hdrTok
	plain := func(ts []hdrTok) {
		for _, t := range ts {
			out = append(out, hdrNode{hdrTok: t})
		}
	}
	flush := func() {
		defer func() { seg = nil }()
		if lt := indexTok(seg, '<'); lt >= 0 {
			gt := lt + 1 + indexTok(seg[lt+1:], '>')
			if gt <= lt {
				plain(seg)
				return
			}
			plain(seg[:lt+1])
			words, comments := splitComments(seg[lt+1 : gt])
			if len(words) > 0 {
				out = append(out, hdrNode{hdrTok: hdrTok{kind: 'A'}, addr: words})
			}
			plain(seg[gt : gt+1])
			plain(comments)
			plain(seg[gt+1:])
			return
		}
		words, comments := splitComments(seg)
		if !isAddrSpec(words) {
			plain(seg)
			return
		}
		out = append(out, hdrNode{hdrTok: hdrTok{kind: 'A'}, addr: words})
		plain(comments)
	}
	inAngle := false
	for _, t := range toks {
		switch {
		case t.kind == '<':
			inAngle = true
		case t.kind == '>':
			inAngle = false
		case !inAngle && (t.kind == ',' || t.kind == ';'):
			flush()
			out = append(out, hdrNode{hdrTok: t})
			continue
		case !inAngle && t.kind == ':':
			plain(seg) // the group's display name
			seg = nil
			out = append(out, hdrNode{hdrTok: t, startGrp: true})
			continue
		}
		seg = append(seg, t)
	}
	flush()
	return out
}

func indexTok(ts []hdrTok, kind byte) int {
	for i, t := range ts {
		if t.kind == kind {
			return i
		}
	}
	return -1
}

func splitComments(ts []hdrTok) (words, comments []hdrTok) {
	for _, t := range ts {
		if t.kind == 'c' {
			comments = append(comments, t)
		} else {
			words = append(words, t)
		}
	}
	return words, comments
}

// isAddrSpec reports whether ts read as local@domain or local: words
// joined by '.' and at most one '@', never two words side by side.
func isAddrSpec(ts []hdrTok) bool {
	if len(ts) == 0 {
		return false
	}
	prevWord := false
	ats := 0
	for _, t := range ts {
		switch t.kind {
		case 'a', 'q', 'd':
			if prevWord {
				return false
			}
			prevWord = true
		case '.', '@':
			if t.kind == '@' {
				ats++
			}
			prevWord = false
		default:
			return false
		}
	}
	return ats <= 1
}

// externalAddr is an address's tokens written back together, as
// tok822_externalize does within an address (no spaces).
func externalAddr(ts []hdrTok) string {
	var b strings.Builder
	for _, t := range ts {
		b.WriteString(t.raw)
	}
	return b.String()
}

// internalAddr is tok822_internalize: quoted strings lose their quotes
// and escapes.
func internalAddr(ext string) string {
	var b strings.Builder
	for _, t := range scanHeaderTokens(ext) {
		if t.kind != 'q' {
			b.WriteString(t.raw)
			continue
		}
		s := strings.TrimPrefix(t.raw, `"`)
		if len(s) > 0 && s[len(s)-1] == '"' && (len(s) < 2 || s[len(s)-2] != '\\') {
			s = s[:len(s)-1]
		}
		for i := 0; i < len(s); i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// hdrRewrite is what header rewriting needs for one message.
type hdrRewrite struct {
	qualify func(string) string // standard form in this message's context
	st      *state
	t       *tables
}

// rewriteAddrHeader rewrites the addresses of one header field (raw, with
// its CRLF line ends) of class 's' or 'r'. It returns the field unchanged
// when no address changed.
func (c *Cleanup) rewriteAddrHeader(ctx context.Context, hr *hdrRewrite, class byte, raw []byte) []byte {
	name, value, ok := strings.Cut(string(raw), ":")
	if !ok {
		return raw
	}
	nodes := parseAddrHeader(scanHeaderTokens(value))
	changed := false
	for i := range nodes {
		n := &nodes[i]
		if n.kind != 'A' {
			continue
		}
		old := externalAddr(n.addr)
		addr := c.rewriteHeaderAddr(ctx, hr, class, old)
		if addr != old {
			changed = true
			n.addr = scanHeaderTokens(addr)
		}
	}
	if !changed {
		return raw
	}
	return foldHeader(strings.TrimRight(name, " \t") + ": " + externalizeHeader(nodes))
}

// rewriteHeaderAddr is one address's standard form, canonical mapping and
// masquerading, per canonical_classes, sender/recipient_canonical_classes
// and masquerade_classes (header_sender, header_recipient). ext and the
// result are in external (quoted) form.
func (c *Cleanup) rewriteHeaderAddr(ctx context.Context, hr *hdrRewrite, class byte, ext string) string {
	ext = hr.qualify(ext)
	addr := internalAddr(ext)
	hclass, own := "header_recipient", hr.t.recipientCanon
	ownClasses := c.cfg.RecipientCanonicalClasses
	if class == 's' {
		hclass, own, ownClasses = "header_sender", hr.t.senderCanon, c.cfg.SenderCanonicalClasses
	}
	if hasClass(ownClasses, hclass) {
		addr = c.map11(ctx, hr.st, own, addr)
	}
	if hasClass(c.cfg.CanonicalClasses, hclass) {
		addr = c.map11(ctx, hr.st, hr.t.canon, addr)
	}
	if !hr.t.noMasquerade && hasClass(c.cfg.MasqueradeClasses, hclass) {
		addr = c.masquerade(addr)
	}
	if addr == internalAddr(ext) {
		return ext
	}
	return rewrite.QuoteLocal(addr)
}

// externalizeHeader is tok822_externalize with TOK822_STR_HEAD: a newline
// after each comma, and a space after a group's ':', before '<', and
// between two words.
func externalizeHeader(nodes []hdrNode) string {
	var b strings.Builder
	for i, n := range nodes {
		if n.kind == 'A' {
			b.WriteString(externalAddr(n.addr))
		} else {
			b.WriteString(n.raw)
		}
		if i+1 == len(nodes) {
			break
		}
		next := nodes[i+1]
		switch {
		case n.kind == ',':
			b.WriteByte('\n')
		case n.startGrp || next.kind == '<' || n.word() && next.word():
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// foldHeader is cleanup_fold_header and cleanup_out_header: the lines of
// a rebuilt header are joined with a space while the joined line stays
// under 70 characters; the others become continuation lines starting with
// a tab.
func foldHeader(h string) []byte {
	lines := strings.Split(h, "\n")
	var b strings.Builder
	lineLen := 0
	for i, l := range lines {
		switch {
		case i == 0:
			b.WriteString(l)
			lineLen = len(l)
		case lineLen+1+len(l) < 70:
			b.WriteString(" " + l)
			lineLen += 1 + len(l)
		default:
			b.WriteString("\r\n\t" + l)
			lineLen = len(l)
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}
