package cleanup

import (
	"bufio"
	"context"
	"io"
	"mime"
	"strings"

	"sqlmta/mtad/envelope"
	"sqlmta/mtad/spool"
)

// contentChecks runs body_checks, mime_header_checks and
// nested_header_checks over the body, as Postfix's cleanup does with MIME
// input processing on (disable_mime_input_processing = no): the headers of
// each MIME part go to mime_header_checks, the headers of an attached
// message to nested_header_checks (its MIME fields to mime_header_checks),
// every other line (boundaries included) to body_checks, up to
// body_checks_size_limit bytes of each body segment. Header actions are
// header_checks' (headerChecks); body lines are looked up without their
// line end: REJECT (4.x.x: defer), DISCARD and PASS end the inspection,
// IGNORE drops the line, REPLACE swaps it, PREPEND puts a line before it,
// HOLD, REDIRECT, FILTER and BCC are remembered in st. The body, as
// changed, goes to a spool: the returned reader reads it, done frees it.
func (c *Cleanup) contentChecks(ctx context.Context, st *state, env *envelope.Envelope, t *tables, primary [][]byte, br *bufio.Reader) (io.Reader, func(), error) {
	limit := c.cfg.BodyChecksSizeLimit
	if limit <= 0 {
		limit = 51200
	}
	buf := spool.New(1<<20, "")
	done := func() { buf.Close() }
	ms := &mimeScan{c: c, ctx: ctx, st: st, env: env, t: t, limit: limit, out: buf, mime: !c.cfg.DisableMimeInput}
	if ms.mime {
		ms.afterHeaders(primary)
	}
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the reader's buffer: look at it whole.
			rest, rerr := br.ReadBytes('\n')
			line, err = append(append([]byte(nil), line...), rest...), rerr
		}
		if len(line) > 0 {
			ms.line(line)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			done()
			return nil, nil, err
		}
	}
	ms.flush()
	if ms.err != nil {
		done()
		return nil, nil, ms.err
	}
	return buf.Reader(), done, nil
}

// The states of mimeScan.
const (
	inBody          = iota // body lines (a part's body, a preamble or epilogue)
	inPartHeaders          // the headers of a MIME part
	inNestedHeaders        // the headers of an attached message/rfc822
)

// mimeScan follows the MIME structure line by line.
type mimeScan struct {
	c          *Cleanup
	ctx        context.Context
	st         *state
	env        *envelope.Envelope
	t          *tables
	limit      int64
	out        io.Writer
	err        error
	mime       bool
	state      int
	boundaries []string // open multipart boundaries, outermost first
	pending    []byte   // the logical header being read
	headers    [][]byte // the headers of the current part, as received
	inspected  int64    // body bytes looked at in this segment
	bodyDone   bool     // body_checks said REJECT, DISCARD or PASS
}

func (ms *mimeScan) write(b []byte) {
	if ms.err == nil && len(b) > 0 {
		_, ms.err = ms.out.Write(b)
	}
}

// checking reports whether anything is still to be inspected.
func (ms *mimeScan) checking() bool {
	return ms.st.errs == 0 && !ms.st.discard && !ms.st.passed
}

func (ms *mimeScan) line(line []byte) {
	if ms.mime && ms.boundary(line) {
		return
	}
	if ms.state != inBody {
		ms.headerLine(line)
		return
	}
	// Within a segment only the first body_checks_size_limit bytes count.
	inspect := ms.inspected < ms.limit
	ms.inspected += int64(len(line))
	ms.bodyLine(line, inspect)
}

// boundary handles a line that opens a part or closes a multipart of an
// open boundary; it is body content too, for body_checks.
func (ms *mimeScan) boundary(line []byte) bool {
	if len(ms.boundaries) == 0 || len(line) < 3 || line[0] != '-' || line[1] != '-' {
		return false
	}
	s := strings.TrimRight(string(line), " \t\r\n")[2:]
	for i := len(ms.boundaries) - 1; i >= 0; i-- {
		b := ms.boundaries[i]
		if !strings.HasPrefix(s, b) {
			continue
		}
		switch rest := s[len(b):]; rest {
		case "":
			ms.flush()
			ms.boundaries = ms.boundaries[:i+1]
			ms.state, ms.headers = inPartHeaders, nil
		case "--":
			ms.flush()
			ms.boundaries = ms.boundaries[:i]
			ms.state = inBody
		default:
			continue
		}
		ms.inspected = 0
		ms.bodyLine(line, true)
		return true
	}
	return false
}

// bodyLine gives a body or boundary line to body_checks, when inspect and
// nothing has ended them, and writes what comes of it.
func (ms *mimeScan) bodyLine(line []byte, inspect bool) {
	out := line
	if inspect && ms.t.bodyChecks != nil && !ms.bodyDone && ms.checking() {
		var more bool
		out, more = ms.c.bodyLine(ms.ctx, ms.st, ms.env, ms.t.bodyChecks, line)
		ms.bodyDone = !more
	}
	ms.write(out)
}

// headerLine collects a part's or attached message's header lines; the
// empty line ends them.
func (ms *mimeScan) headerLine(line []byte) {
	if (line[0] == ' ' || line[0] == '\t') && ms.pending != nil {
		ms.pending = append(ms.pending, line...)
		return
	}
	ms.flush()
	if strings.TrimRight(string(line), "\r\n") == "" {
		ms.write(line)
		ms.afterHeaders(ms.headers)
		ms.headers = nil
		return
	}
	ms.pending = append([]byte(nil), line...)
}

// flush checks and writes the header being read, if any.
func (ms *mimeScan) flush() {
	if ms.pending == nil {
		return
	}
	f := ms.pending
	ms.pending = nil
	ms.headers = append(ms.headers, f)
	m := ms.t.mimeChecks
	if ms.state == inNestedHeaders && !isMIMEField(f) {
		m = ms.t.nestedChecks
	}
	if m == nil || !ms.checking() {
		ms.write(f)
		return
	}
	for _, o := range ms.c.headerChecks(ms.ctx, ms.st, ms.env, m, [][]byte{f}) {
		ms.write(o)
	}
}

// afterHeaders sets what follows a header block: the parts of a multipart
// (its preamble first), the headers of an attached message, or a body.
func (ms *mimeScan) afterHeaders(headers [][]byte) {
	ms.state, ms.inspected = inBody, 0
	mt, params := contentType(headers)
	switch {
	case strings.HasPrefix(mt, "multipart/") && params["boundary"] != "":
		ms.boundaries = append(ms.boundaries, params["boundary"])
	case mt == "message/rfc822":
		ms.state = inNestedHeaders
	}
}

// contentType is the media type and parameters of a header block's
// Content-Type field ("" when there is none or it does not parse).
func contentType(headers [][]byte) (string, map[string]string) {
	for _, f := range headers {
		name, value, ok := strings.Cut(string(f), ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "Content-Type") {
			continue
		}
		value = strings.NewReplacer("\r\n", "", "\n", "").Replace(value)
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(value))
		if err != nil {
			return "", nil
		}
		return strings.ToLower(mt), params
	}
	return "", nil
}

// isMIMEField reports whether a header field is MIME's (Content-*,
// MIME-Version), which mime_header_checks sees even in an attached message.
func isMIMEField(f []byte) bool {
	name, _, _ := strings.Cut(strings.ToLower(string(f)), ":")
	name = strings.TrimSpace(name)
	return strings.HasPrefix(name, "content-") || name == "mime-version"
}

// bodyLine checks one line (with its line end) and returns what to write
// in its place, and whether later lines are still to be checked.
func (c *Cleanup) bodyLine(ctx context.Context, st *state, env *envelope.Envelope, m *maps, line []byte) ([]byte, bool) {
	text := strings.TrimRight(string(line), "\r\n")
	eol := line[len(text):]
	value, found, ok := c.findAction(ctx, st, m, text)
	if !ok {
		return line, false
	}
	if !found {
		return line, true
	}
	cmd, arg := splitAction(value)
	act := func(action, arg string) { c.actLog(st, env, action, "body", text, arg) }
	if handled, _ := c.remember(st, m, cmd, arg, text, act); handled {
		return line, true
	}
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
