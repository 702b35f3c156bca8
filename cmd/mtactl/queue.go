package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"sqlmta/config"
	mapopen "sqlmta/mapdrivers/open"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/matchlist"
	"sqlmta/mtad/rewrite"
	"sqlmta/store"
)

// queueEnv is what every queue command needs: the configuration, the store and its admin interface.
type queueEnv struct {
	cfg   *config.Config
	st    store.Store
	admin store.Admin
}

func openQueue(ctx context.Context, dir string) (*queueEnv, error) {
	cfg, err := config.Load(dir)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, dir)
	if err != nil {
		return nil, err
	}
	as, ok := st.(store.AdminStore)
	if !ok {
		st.Close()
		return nil, fmt.Errorf("%s store offers no queue administration", st.Dialect())
	}
	return &queueEnv{cfg: cfg, st: st, admin: as.Admin()}, nil
}

func (e *queueEnv) Close() { e.st.Close() }

// queueFatal reports err as Postfix's tools do ("prog: fatal: …") and returns their exit status.
func queueFatal(stderr io.Writer, prog string, err error) int {
	fmt.Fprintf(stderr, "%s: fatal: %v\n", prog, err)
	return 1
}

// maillog returns the mail log the commands write their events to: maillog_file when set, as mtad does.
// Without it mtad logs to its own stderr, which a command cannot reach: then the stderr summary is all.
func (e *queueEnv) maillog() (*maillog.Logger, func()) {
	path := e.cfg.Get("maillog_file")
	if path == "" || path == "/dev/stderr" {
		return nil, func() {}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, func() {}
	}
	return maillog.New(f, e.cfg.Get("myhostname"), e.cfg.Get("syslog_name")), func() { f.Close() }
}

// queueMain is `mtactl queue …`.
func queueMain(dir string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage: mtactl queue list|flush|delete|hold|release|requeue|cat|shape [ARGS]\n")
		return 2
	}
	rest := args[1:]
	switch args[0] {
	case "list":
		return postqueueMain("mtactl queue list", dir, append([]string{"-p"}, rest...), stdout, stderr)
	case "flush":
		if len(rest) == 0 {
			rest = []string{"-f"}
		}
		return postqueueMain("mtactl queue flush", dir, rest, stdout, stderr)
	case "delete", "hold", "release", "requeue":
		op := map[string]string{"delete": "-d", "hold": "-h", "release": "-H", "requeue": "-r"}[args[0]]
		var a []string
		for _, id := range rest {
			a = append(a, op, id)
		}
		if len(rest) == 0 {
			a = []string{op, "-"}
		}
		return postsuperMain("mtactl queue "+args[0], dir, a, stdin, stderr)
	case "cat":
		return postcatMain("mtactl queue cat", dir, rest, stdout, stderr)
	case "shape":
		return qshapeMain("mtactl queue shape", dir, rest, stdout, stderr)
	}
	fmt.Fprint(stderr, "usage: mtactl queue list|flush|delete|hold|release|requeue|cat|shape [ARGS]\n")
	return 2
}

// postqueueMain is postqueue (and mailq, as `-p`): -p list, -j JSON lines, -f flush, -i id, -s site.
func postqueueMain(prog, dir string, args []string, stdout, stderr io.Writer) int {
	mode := ""
	var flush store.FlushParams
	rest, err := getopt(args, "c:C:fi:jps:v", func(c byte, arg string) {
		switch c {
		case 'c', 'C':
			dir = arg
		case 'f', 'j', 'p':
			mode = string(c)
		case 'i':
			mode, flush.QueueID = "i", arg
		case 's':
			mode, flush.Site = "s", arg
		}
	})
	if err == nil && (len(rest) > 0 || mode == "") {
		err = fmt.Errorf("usage: %s -p | -j | -f | -i queue_id | -s site", prog)
	}
	if err == nil && mode == "s" && !validSite(flush.Site) {
		err = fmt.Errorf("Cannot flush mail queue - invalid destination: \"%s\"", clip(flush.Site, 100))
	}
	if err != nil {
		return postqueueFatal(stderr, prog, err)
	}
	ctx := context.Background()
	e, err := openQueue(ctx, dir)
	if err != nil {
		return postqueueFatal(stderr, prog, err)
	}
	defer e.Close()
	if mode == "s" {
		// Postfix's flush(8) serves only the sites in fast_flush_domains; a table that fails is its
		// FLUSH_STAT_FAIL.
		ok, err := e.fastFlushDomain(ctx, flush.Site)
		if err != nil {
			fmt.Fprintf(stderr, "%s: warning: fast_flush_domains: %v\n", prog, err)
			return postqueueFatal(stderr, prog, fmt.Errorf("Cannot flush mail queue - mail system is down"))
		}
		if !ok {
			return postqueueFatal(stderr, prog, fmt.Errorf("Flush service is not configured for destination \"%s\"", flush.Site))
		}
	}
	switch mode {
	case "p":
		err = e.list(ctx, stdout, false)
	case "j":
		err = e.list(ctx, stdout, true)
	default:
		// The flush makes the work due now; PostgreSQL nodes are woken at once, the others find it at
		// their next poll.
		_, err = e.admin.RecipientsFlush(ctx, flush)
		if err == nil && mode != "i" {
			err = e.reviveDead(ctx, flush.Site)
		}
	}
	if err != nil {
		return postqueueFatal(stderr, prog, err)
	}
	return 0
}

// postqueueFatal is queueFatal with postqueue's status: its msg_cleanup handler makes every fatal
// error exit EX_UNAVAILABLE (69), whatever status the message asked for.
func postqueueFatal(stderr io.Writer, prog string, err error) int {
	queueFatal(stderr, prog, err)
	return 69
}

// validSite is postqueue's check of a -s site: a [address] literal or a valid_hostname.
func validSite(site string) bool {
	if inner, ok := strings.CutPrefix(site, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		return ok && rewrite.ValidMailhostAddr(inner)
	}
	return rewrite.ValidHostname(site)
}

// clip is printf's "%.Ns%s" with "..." after a cut, as Postfix quotes untrusted input.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// fastFlushDomain reports whether site is in fast_flush_domains, matched as smtpd's ETRN does.
func (e *queueEnv) fastFlushDomain(ctx context.Context, site string) (bool, error) {
	opener := &mapopen.Opener{Store: e.st}
	defer opener.Close()
	sub := slices.Contains(e.cfg.List("parent_domain_matches_subdomains"), "fast_flush_domains")
	domains, err := matchlist.ParseDomainsTables(ctx, e.cfg.List("fast_flush_domains"), sub, opener.Open)
	if err != nil {
		return false, err
	}
	return domains.Match(ctx, site)
}

// mailqMain is mailq: postqueue -p (sendmail's -v and -C are accepted).
func mailqMain(dir string, args []string, stdout, stderr io.Writer) int {
	rest, err := getopt(args, "c:C:v", func(c byte, arg string) {
		if c != 'v' {
			dir = arg
		}
	})
	if err != nil || len(rest) > 0 {
		fmt.Fprintf(stderr, "mailq: fatal: usage: mailq [-v] [-C config_dir]\n")
		return 1
	}
	return postqueueMain("mailq", dir, []string{"-p"}, stdout, stderr)
}

// reviveDead ends the suspension of dead destinations (all, or those whose next hop is site), as a
// Postfix flush makes qmgr forget them: each node probes them again at its next claim. The mark is
// set to expire now rather than deleted, so that the node that set it also drops its own copy.
func (e *queueEnv) reviveDead(ctx context.Context, site string) error {
	marks, err := e.st.DeadDestinationList(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, m := range marks {
		if (site == "" || strings.EqualFold(m.Nexthop, site)) && m.Until.After(now) {
			m.Until = now
			if err := e.st.DeadDestinationSet(ctx, m); err != nil {
				return err
			}
		}
	}
	return nil
}

// list writes the queue as Postfix's showq_compat (mailq) or showq_json (postqueue -j) does, streaming.
func (e *queueEnv) list(ctx context.Context, out io.Writer, asJSON bool) error {
	w := bufio.NewWriterSize(out, 64<<10)
	f := mailqFormat{long: e.cfg.Get("enable_long_queue_ids") == "yes", empty: e.cfg.Get("empty_address_recipient")}
	var count, size int64
	err := e.admin.MessagesScan(ctx, store.ScanParams{}, func(m *store.QueuedMessage) error {
		if asJSON {
			f.json(w, m)
		} else {
			if count == 0 {
				f.heading(w)
			} else {
				w.WriteString("\n")
			}
			f.message(w, m)
		}
		count++
		size += m.Size
		if count == 1 {
			return w.Flush() // the first message shows at once, before the rest is read
		}
		return nil
	})
	if err != nil {
		w.Flush()
		return err
	}
	if !asJSON {
		if count == 0 {
			w.WriteString("Mail queue is empty\n")
		} else {
			s := "s"
			if count == 1 {
				s = ""
			}
			fmt.Fprintf(w, "\n-- %d Kbytes in %d Request%s.\n", size/1024, count, s)
		}
	}
	return w.Flush()
}

// mailqFormat prints messages in Postfix's layouts (postqueue/showq_compat.c, showq_json.c).
type mailqFormat struct {
	long  bool   // enable_long_queue_ids: the wider columns
	empty string // empty_address_recipient, shown for the null sender
}

func (f mailqFormat) heading(w *bufio.Writer) {
	if f.long {
		fmt.Fprintf(w, "%-17s %8s %-19s %s\n", "----Queue ID-----", "--Size--", "---Arrival Time----", "--Sender/Recipient------")
	} else {
		fmt.Fprintf(w, "%-11s %7s %-20s %s\n", "-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------")
	}
}

// status is the queue ID with Postfix's markers: * active, ! hold, # force-expired.
func status(m *store.QueuedMessage) string {
	s := m.QueueID
	switch m.Queue {
	case store.QueueActive:
		s += "*"
	case store.QueueHold:
		s += "!"
	}
	if m.ForcedExpire {
		s += "#"
	}
	return s
}

// asctime is C's asctime() without its newline: "Wed Nov  5 21:11:08 2026", in local time.
func asctime(t time.Time) string { return t.Local().Format("Mon Jan _2 15:04:05 2006") }

func (f mailqFormat) message(w *bufio.Writer, m *store.QueuedMessage) {
	// %20.20s of asctime's text keeps its trailing space: two spaces before the sender.
	at := asctime(m.Arrival) + " "
	if f.long {
		fmt.Fprintf(w, "%-17s %8d %s %s\n", status(m), m.Size, at[:19], f.sender(m.Sender))
	} else {
		fmt.Fprintf(w, "%-11s %7d %s %s\n", status(m), m.Size, at[:20], f.sender(m.Sender))
	}
	saved := ""
	for _, r := range showOrder(m.Recipients) {
		// A "(reason)" line when the reason changes; "(reason unavailable)" after a recipient that had one.
		if r.LastReason != saved {
			saved = r.LastReason
			show := saved
			if show == "" {
				show = "reason unavailable"
			}
			fmt.Fprintf(w, "%*s(%s)\n", max(76-len(show), 0), "", show)
		}
		if f.long {
			fmt.Fprintf(w, "%-17s %8s %-19s %s\n", "", "", "", printable(rewrite.QuoteLocal(r.Address)))
		} else {
			fmt.Fprintf(w, "%-11s %7s %-20s %s\n", "", "", "", printable(rewrite.QuoteLocal(r.Address)))
		}
	}
}

// showOrder lists recipients as showq does: those with a deferral reason first (Postfix reads them from
// the defer log), then the others, each group in envelope order.
func showOrder(rs []store.Recipient) []store.Recipient {
	out := make([]store.Recipient, 0, len(rs))
	for _, r := range rs {
		if r.LastReason != "" {
			out = append(out, r)
		}
	}
	for _, r := range rs {
		if r.LastReason == "" {
			out = append(out, r)
		}
	}
	return out
}

func (f mailqFormat) sender(s string) string {
	if s == "" {
		s = f.empty
	}
	return printable(rewrite.QuoteLocal(s))
}

func (f mailqFormat) json(w *bufio.Writer, m *store.QueuedMessage) {
	fmt.Fprintf(w, `{"queue_name": "%s", "queue_id": "%s", "arrival_time": %d, "message_size": %d, "forced_expire": %t, "sender": "%s", "recipients": [`,
		jsonQuote(m.Queue), jsonQuote(m.QueueID), m.Arrival.Unix(), m.Size, m.ForcedExpire, jsonQuote(f.sender(m.Sender)))
	for i, r := range showOrder(m.Recipients) {
		if i > 0 {
			w.WriteString(", ")
		}
		fmt.Fprintf(w, `{"address": "%s"`, jsonQuote(printable(rewrite.QuoteLocal(r.Address))))
		if r.LastReason != "" {
			fmt.Fprintf(w, `, "delay_reason": "%s"`, jsonQuote(printable(r.LastReason)))
		}
		w.WriteString("}")
	}
	w.WriteString("]}\n")
}

// jsonQuote escapes as showq_json's json_quote: short escapes for common controls, \uXXXX for the rest,
// backslash and double quote escaped, everything else (UTF-8 included) as is.
func jsonQuote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, c)
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// printable replaces control characters and invalid UTF-8 with '?', as Postfix's printable() does for
// queue displays.
func printable(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f || s[i] >= 0x80 {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n <= 1 || r < 0x20 || r == 0x7f {
			b.WriteByte('?')
		} else {
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// readIDs reads whitespace-separated queue IDs (postsuper's "-" argument).
func readIDs(r io.Reader) ([]string, error) {
	var ids []string
	sc := bufio.NewScanner(r)
	sc.Split(bufio.ScanWords)
	for sc.Scan() {
		ids = append(ids, sc.Text())
	}
	return ids, sc.Err()
}

func plural(n int, word string) string {
	if n == 1 {
		return strconv.Itoa(n) + " " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
