package cleanup

import (
	"bufio"
	"context"
	"io"
	"strings"

	"sqlmta/mtad/envelope"
	"sqlmta/mtad/spool"
)

// bodyChecks runs body_checks over the body lines, as Postfix's cleanup
// does with MIME processing off: every line after the primary header
// block, up to body_checks_size_limit bytes, is looked up without its line
// end. REJECT (4.x.x: defer) and DISCARD end the inspection, as does PASS;
// IGNORE drops the line, REPLACE swaps it, PREPEND puts a line before it;
// HOLD, REDIRECT, FILTER and BCC are remembered in st as header_checks'
// are. The body, as changed, goes to a spool: the returned reader reads
// it, done frees it.
func (c *Cleanup) bodyChecks(ctx context.Context, st *state, env *envelope.Envelope, m *maps, br *bufio.Reader) (io.Reader, func(), error) {
	limit := c.cfg.BodyChecksSizeLimit
	if limit <= 0 {
		limit = 51200
	}
	buf := spool.New(1<<20, "")
	done := func() { buf.Close() }
	var inspected int64
	filtering := true
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the reader's buffer: inspect its start,
			// pass the rest as it is.
			rest, rerr := br.ReadBytes('\n')
			line, err = append(append([]byte(nil), line...), rest...), rerr
		}
		if len(line) > 0 {
			out := line
			if filtering && inspected < limit {
				inspected += int64(len(line))
				out, filtering = c.bodyLine(ctx, st, env, m, line)
			}
			if _, werr := buf.Write(out); werr != nil {
				done()
				return nil, nil, werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			done()
			return nil, nil, err
		}
	}
	return buf.Reader(), done, nil
}

// bodyLine checks one line (with its line end) and returns what to write
// in its place, and whether later lines are still to be checked.
func (c *Cleanup) bodyLine(ctx context.Context, st *state, env *envelope.Envelope, m *maps, line []byte) ([]byte, bool) {
	text := strings.TrimRight(string(line), "\r\n")
	eol := line[len(text):]
	value, found, err := m.Find(ctx, text, false)
	if err != nil {
		c.log.Printf("cleanup", "warning: %s: %s map lookup problem -- message not accepted, try again later", st.queueID, m.Title)
		st.errs |= statWrite
		return line, false
	}
	if !found {
		return line, true
	}
	cmd, arg := splitAction(value)
	act := func(action, arg string) { c.actLog(st, env, action, "body", text, arg) }
	switch strings.ToUpper(cmd) {
	case "REJECT":
		c.reject(st, arg)
		act("reject", st.reason)
		return line, false
	case "DISCARD":
		act("discard", arg)
		st.discard = true
		return line, false
	case "PASS":
		act("pass", arg)
		return line, false
	case "WARN":
		act("warning", arg)
	case "INFO":
		act("info", arg)
	case "HOLD":
		if st.hold == "" {
			act("hold", arg)
			st.hold = text
		}
	case "FILTER":
		if strings.Contains(arg, ":") {
			st.filter = arg
			act("filter", arg)
		} else {
			c.log.Printf("cleanup", "warning: bad FILTER command %s in %s -- need transport:destination", arg, m.Title)
		}
	case "REDIRECT":
		if strings.Contains(arg, "@") {
			st.redirect = arg
			act("redirect", arg)
		} else {
			c.log.Printf("cleanup", "warning: bad REDIRECT target \"%s\" in %s map -- need user@domain", arg, m.Title)
		}
	case "BCC":
		if strings.Contains(arg, "@") {
			act("bcc", arg)
			st.bcc = append(st.bcc, arg)
		} else {
			c.log.Printf("cleanup", "warning: bad BCC address \"%s\" in %s map -- need user@domain", arg, m.Title)
		}
	case "IGNORE":
		return nil, true
	case "REPLACE":
		act("replace", arg)
		return append([]byte(arg), eol...), true
	case "PREPEND":
		act("prepend", arg)
		return append(append([]byte(arg), eol...), line...), true
	case "DUNNO", "OK":
	default:
		c.log.Printf("cleanup", "warning: unknown command in %s map: %s", m.Title, value)
	}
	return line, true
}
