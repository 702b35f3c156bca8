package cleanup

import (
	"context"
	"strings"

	"sqlmta/mtad/envelope"
)

// logicalHeader is one header field as header_checks sees it: its lines
// without their line ends, joined by "\n" (Postfix examines one logical
// header at a time, continuation lines included).
func logicalHeader(raw []byte) string {
	s := strings.ReplaceAll(string(raw), "\r\n", "\n")
	return strings.TrimSuffix(s, "\n")
}

// headerChecks runs header_checks over the primary header fields and
// returns the fields to write. Postfix's actions (cleanup_message.c,
// cleanup_act): REJECT ends the message (4.x.x text defers it), DISCARD
// drops it with a success reply, IGNORE and STRIP drop the field, REPLACE
// swaps it, PREPEND puts a field before it, WARN/INFO only log. HOLD,
// REDIRECT, FILTER and BCC are logged and remembered in st; Submit acts on
// them (applyActions). After REJECT, DISCARD, REDIRECT or PASS no further
// field is inspected.
func (c *Cleanup) headerChecks(ctx context.Context, st *state, env *envelope.Envelope, m *maps, fields [][]byte) [][]byte {
	if m == nil {
		return fields
	}
	out := make([][]byte, 0, len(fields))
	filtering := true
	for _, f := range fields {
		if !filtering {
			out = append(out, f)
			continue
		}
		hdr := logicalHeader(f)
		value, found, ok := c.findAction(ctx, st, m, hdr)
		if !ok || !found {
			out = append(out, f)
			continue
		}
		cmd, text := splitAction(value)
		act := func(action, text string) { c.actLog(st, env, action, "header", hdr, text) }
		if handled, took := c.remember(st, m, cmd, text, hdr, act); handled {
			if took && strings.EqualFold(cmd, "REDIRECT") {
				filtering = false
			}
			out = append(out, f)
			continue
		}
		switch strings.ToUpper(cmd) {
		case "REJECT":
			c.reject(st, text)
			filtering = false
			act("reject", st.reason)
			out = append(out, f)
		case "PASS":
			act("pass", text)
			filtering = false
			st.passed = true
			out = append(out, f)
		case "DISCARD":
			act("discard", text)
			st.discard = true
			filtering = false
			out = append(out, f)
		case "PREPEND":
			switch {
			case text == "":
				c.log.Printf("cleanup", "warning: PREPEND action without text in %s map", m.Title)
			case !isHeaderLine([]byte(text)):
				c.log.Printf("cleanup", "warning: bad PREPEND header text \"%s\" in %s map -- need \"headername: headervalue\"", text, m.Title)
			default:
				act("prepend", text)
				out = append(out, []byte(text+"\r\n"))
			}
			out = append(out, f)
		case "REPLACE":
			switch {
			case text == "":
				c.log.Printf("cleanup", "warning: REPLACE action without text in %s map", m.Title)
				out = append(out, f)
			case !isHeaderLine([]byte(text)):
				c.log.Printf("cleanup", "warning: bad REPLACE header text \"%s\" in %s map -- need \"headername: headervalue\"", text, m.Title)
				out = append(out, f)
			default:
				act("replace", text)
				out = append(out, []byte(text+"\r\n"))
			}
		case "STRIP":
			act("strip", text)
		case "IGNORE":
		case "DUNNO", "OK":
			out = append(out, f)
		default:
			c.log.Printf("cleanup", "warning: unknown command in %s map: %s", m.Title, value)
			out = append(out, f)
		}
	}
	return out
}

// actLog writes cleanup_act_log's line, kind being "header" or "body":
// "QUEUEID: hold: header Subject: x from host[addr]; from=<s> to=<r> proto=ESMTP helo=<h>: text".
func (c *Cleanup) actLog(st *state, env *envelope.Envelope, action, kind, content, text string) {
	var b strings.Builder
	if len(content) > 200 {
		content = content[:200]
	}
	origin := "local"
	if env.ClientAddr != "" {
		name := env.ClientName
		if name == "" {
			name = "unknown"
		}
		origin = name + "[" + env.ClientAddr + "]"
	}
	b.WriteString(st.queueID + ": " + action + ": " + kind + " " + content + " from " + origin + ";")
	b.WriteString(" from=<" + st.sender + ">")
	if st.recip != "" {
		b.WriteString(" to=<" + st.recip + ">")
	}
	if env.Protocol != "" {
		b.WriteString(" proto=" + env.Protocol)
	}
	if env.Helo != "" {
		b.WriteString(" helo=<" + env.Helo + ">")
	}
	if text != "" {
		b.WriteString(": " + text)
	}
	c.log.Printf("cleanup", "%s", printable(b.String()))
}

// printable replaces control characters with '?', as Postfix's msg_*()
// logging does, so a folded header stays on one log line.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// dsnPrepend is dsn_prepend: text keeps its own "X.Y.Z " status when it
// starts with one, otherwise def is put in front.
func dsnPrepend(def, text string) string {
	if code, rest, ok := strings.Cut(text, " "); ok || code != "" {
		if isDSN(code) {
			return code + " " + strings.TrimLeft(rest, " \t")
		}
	}
	return def + " " + text
}

// isDSN reports whether s looks like an RFC 3463 status "D.SSS.DDD".
func isDSN(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || parts[0][0] < '2' || parts[0][0] > '5' {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return false
		}
		for _, ch := range p {
			if ch < '0' || ch > '9' {
				return false
			}
		}
	}
	return true
}

// splitAction splits a check table's value into its action and the text
// after it.
func splitAction(value string) (cmd, text string) {
	if i := strings.IndexAny(value, " \t"); i >= 0 {
		return value[:i], strings.TrimLeft(value[i:], " \t")
	}
	return value, ""
}

// reject is a check's REJECT: the message is refused with text (with its
// status, "5.7.1" by default; a 4.x.x status defers it).
func (c *Cleanup) reject(st *state, text string) {
	st.reason = "5.7.1 message content rejected"
	if text != "" {
		st.reason = dsnPrepend("5.7.1", text)
		if st.reason[0] != '4' && st.reason[0] != '5' {
			c.log.Printf("cleanup", "warning: bad DSN action in %s -- need 4.x.x or 5.x.x", text)
			st.reason = "4" + st.reason[1:]
		}
	}
	if st.reason[0] == '4' {
		st.errs |= statDefer
	} else {
		st.errs |= statCont
	}
}

// findAction looks key up in a check table. A lookup error fails the
// message for now (ok false).
func (c *Cleanup) findAction(ctx context.Context, st *state, m *maps, key string) (value string, found, ok bool) {
	value, found, err := m.Find(ctx, key, false)
	if err != nil {
		c.log.Printf("cleanup", "warning: %s: %s map lookup problem -- message not accepted, try again later", st.queueID, m.Title)
		st.errs |= statWrite
		return "", false, false
	}
	return value, found, true
}

// remember carries out the actions header_checks and body_checks share
// that only log, or that Submit acts on later: WARN, INFO, HOLD, FILTER,
// REDIRECT and BCC (content is what HOLD names in its log). handled is
// false for any other action; took is false when its argument was bad.
func (c *Cleanup) remember(st *state, m *maps, cmd, text, content string, act func(action, text string)) (handled, took bool) {
	switch strings.ToUpper(cmd) {
	case "WARN":
		act("warning", text)
	case "INFO":
		act("info", text)
	case "HOLD":
		if st.hold == "" && !st.discard {
			act("hold", text)
			st.hold = content
		}
	case "FILTER":
		switch {
		case text == "":
			c.log.Printf("cleanup", "warning: missing FILTER command argument in %s map", m.Title)
			return true, false
		case !strings.Contains(text, ":"):
			c.log.Printf("cleanup", "warning: bad FILTER command %s in %s -- need transport:destination", text, m.Title)
			return true, false
		}
		st.filter = text
		act("filter", text)
	case "REDIRECT":
		if !strings.Contains(text, "@") {
			c.log.Printf("cleanup", "warning: bad REDIRECT target \"%s\" in %s map -- need user@domain", text, m.Title)
			return true, false
		}
		st.redirect = text
		act("redirect", text)
	case "BCC":
		if !strings.Contains(text, "@") {
			c.log.Printf("cleanup", "warning: bad BCC address \"%s\" in %s map -- need user@domain", text, m.Title)
			return true, false
		}
		act("bcc", text)
		st.bcc = append(st.bcc, text)
	default:
		return false, false
	}
	return true, true
}
