package smtpd

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"sqlmta/mtad/envelope"
	"sqlmta/mtad/queueid"
	"sqlmta/mtad/reply"
	"sqlmta/mtad/rewrite"
	"sqlmta/mtad/spool"
)

// Command names in the order Postfix prints them in the disconnect line.
// cmdOrder is Postfix's command table order, which its disconnect line follows.
var cmdOrder = []string{"helo", "ehlo", "xclient", "xforward", "starttls", "auth", "mail", "rcpt", "data", "bdat",
	"rset", "noop", "vrfy", "etrn", "quit", "unknown"}

// junkCommands can be repeated without limit by a client that goes nowhere;
// Postfix counts them against smtpd_junk_command_limit.
var junkCommands = map[string]bool{"helo": true, "ehlo": true, "rset": true, "noop": true, "vrfy": true, "etrn": true}

type cmdStat struct{ ok, total int }

// errQuit ends a session after the reply has been sent.
var errQuit = errors.New("quit")

type session struct {
	srv  *Server
	cfg  *compiled
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer

	ip   netip.Addr
	addr string // client IP as text, for logs and the envelope
	name string // verified client host name or "unknown"
	// reverseName is the PTR name even when it does not resolve back
	// (check_reverse_client_hostname_access), or "unknown".
	reverseName string
	tls         *tls.ConnectionState // nil until STARTTLS (tls.go)
	ccert       clientCert           // the client's certificate (ccert.go)
	auth        authState            // the SASL login (auth.go)
	dns         dnsState             // name lookup outcome and DNSBL memo (dns.go)
	bdat        *bdatState           // a message arriving in BDAT chunks
	helo        string
	protocol    string // "SMTP" until EHLO
	where       string // last command, for "lost connection after X"

	errorCount int
	junk       int
	stats      map[string]*cmdStat

	// The postmaster's transcript (notify.go).
	history    []string // "In:  command" and "Out: reply" lines
	errMask    errClass // classes of the errors since the last reset
	classified bool     // the current command's error class is noted
	reason     string   // why the session ended abnormally, for the notice

	chk          checkState // UCE restriction state (restrict.go)
	accessDenied bool       // client restrictions rejected at connect
	anvilCounted bool       // the connection is in the anvil's count

	// The mail transaction.
	inTx       bool
	sender     string
	arrival    time.Time
	bodyType   string
	smtputf8   bool
	envID      string
	ret        string
	queueID    string
	rcpts      []envelope.Recipient
	overshoot  int
	msgSizeArg int64
	act        actions // access-map actions for this transaction
	instance   string  // the policy servers' name for this transaction

	// mu guards the fields Shutdown touches from another goroutine.
	mu      sync.Mutex
	busy    bool // in DATA or Submit: finish the transaction before closing
	closing bool
}

func newSession(srv *Server, cfg *compiled, conn net.Conn) *session {
	return &session{
		srv:      srv,
		cfg:      cfg,
		conn:     conn,
		br:       bufio.NewReaderSize(conn, 64<<10),
		bw:       bufio.NewWriterSize(conn, 16<<10),
		protocol: "SMTP",
		where:    "CONNECT",
		stats:    map[string]*cmdStat{},
	}
}

// forceClose is called by Shutdown once its grace period is over.
func (s *session) forceClose() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	if !s.busy {
		// Interrupt the pending command read.
		s.conn.SetReadDeadline(time.Unix(1, 0))
	}
}

func (s *session) logf(format string, args ...any) {
	s.cfg.Log.Printf("smtpd", format, args...)
}

func (s *session) namaddr() string { return s.name + "[" + s.addr + "]" }

func (s *session) serve() {
	defer s.conn.Close()
	s.identify()
	s.logf("connect from %s", s.namaddr())
	var reason string
	if s.cfg.TLS.WrapperMode {
		if s.handshake() != nil {
			reason = "lost connection"
		}
	}
	if reason == "" {
		reason = s.loop()
	}
	if s.anvilCounted {
		s.srv.anvil.disconnect(s.ip)
	}
	s.flush()
	if reason != "" && !(reason == "lost connection" && s.where == "END-OF-MESSAGE") {
		s.logf("%s after %s from %s", reason, s.where, s.namaddr())
	}
	s.reason = reason
	s.chatReset(0)
	s.logf("disconnect from %s%s", s.namaddr(), s.statsString())
}

// identify finds the client address and its forward-confirmed name, as
// Postfix does before the greeting: the PTR name counts only if it resolves
// back to the client address.
func (s *session) identify() {
	s.name = "unknown"
	s.reverseName = "unknown"
	if ap, err := netip.ParseAddrPort(s.conn.RemoteAddr().String()); err == nil {
		s.ip = ap.Addr().Unmap()
		s.addr = s.ip.String()
	} else {
		s.addr = s.conn.RemoteAddr().String()
		s.dns.nameStatus, s.dns.reverseStatus = peerPerm, peerPerm
		return
	}
	s.lookupPeerName()
}

func (s *session) statsString() string {
	var b strings.Builder
	ok, total := 0, 0
	for _, c := range cmdOrder {
		st := s.stats[c]
		if st == nil || st.total == 0 {
			continue
		}
		ok += st.ok
		total += st.total
		if st.ok == st.total {
			fmt.Fprintf(&b, " %s=%d", c, st.total)
		} else {
			fmt.Fprintf(&b, " %s=%d/%d", c, st.ok, st.total)
		}
	}
	if ok == total && total > 0 {
		fmt.Fprintf(&b, " commands=%d", total)
	} else {
		fmt.Fprintf(&b, " commands=%d/%d", ok, total)
	}
	return b.String()
}

// reply queues one reply line. Once the client has made too many errors,
// every reply is delayed (smtpd_error_sleep_time), flushed first so that a
// pipelining client is not left waiting on replies we hold.
func (s *session) reply(format string, args ...any) {
	if s.errorCount >= s.cfg.SoftErrorLimit && s.cfg.ErrorSleep > 0 {
		s.bw.Flush()
		time.Sleep(s.cfg.ErrorSleep)
	}
	text := replyPrintable(fmt.Sprintf(format, args...))
	s.bw.WriteString(text)
	s.bw.WriteString("\r\n")
	if s.cfg.notifyMask != 0 {
		for _, l := range strings.Split(text, "\r\n") {
			s.chat("Out: ", l)
		}
	}
}

// replyPrintable turns control characters (an address may hold them) into
// spaces, as Postfix's replies show them; the CRLF between the lines of a
// multi-line reply stays.
func replyPrintable(text string) string {
	clean := true
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < 0x20 || c == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return text
	}
	b := []byte(text)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\r' && i+1 < len(b) && b[i+1] == '\n':
			i++
		case c < 0x20 || c == 0x7f:
			b[i] = ' '
		}
	}
	return string(b)
}

// flush sends queued replies. Postfix flushes only when the client has sent
// nothing more, which is what makes PIPELINING pay off.
func (s *session) flush() error {
	s.conn.SetWriteDeadline(time.Now().Add(s.cfg.Timeout))
	return s.bw.Flush()
}

// loop runs the command loop; it returns the reason for an abnormal end
// ("lost connection", "timeout", "too many errors") or "".
func (s *session) loop() string {
	if !s.anvilConnect() {
		return ""
	}
	if s.cfg.NoDelayReject {
		// smtpd_delay_reject = no: the client restrictions answer instead
		// of the greeting, and every later command but QUIT is refused.
		if rerr := s.checkConnect(); rerr != nil {
			s.reply("%s", rerr.String())
			s.errMask |= errPolicy
			s.accessDenied = true
			if s.chk.hangup {
				return ""
			}
		} else {
			s.reply("220 %s", s.cfg.Banner)
		}
	} else {
		s.reply("220 %s", s.cfg.Banner)
	}
	for {
		if s.errorCount >= s.cfg.HardErrorLimit {
			s.errMask |= errProtocol
			s.reply("421 4.7.0 %s Error: too many errors", s.cfg.Hostname)
			return "too many errors"
		}
		if s.br.Buffered() == 0 {
			if err := s.flush(); err != nil {
				return "lost connection"
			}
		}
		line, err := s.readCommand()
		if err != nil {
			return s.readFailure(err)
		}
		err = s.command(line)
		if err == errQuit || err == errHangup {
			return ""
		}
		if err != nil {
			return s.readFailure(err)
		}
		s.mu.Lock()
		closing := s.closing
		s.mu.Unlock()
		if closing {
			return ""
		}
	}
}

// readFailure maps a read error to Postfix's reason, answering a timeout
// with 421 as Postfix does.
func (s *session) readFailure(err error) string {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return ""
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		s.reply("421 4.4.2 %s Error: timeout exceeded", s.cfg.Hostname)
		return "timeout"
	}
	return "lost connection"
}

// readCommand reads one command line without its line end. Like Postfix's
// smtp_get with line_length_limit, it keeps the first LineLengthLimit bytes
// of an over-long line and discards the rest.
func (s *session) readCommand() (string, error) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return "", errShutdown
	}
	s.conn.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
	s.mu.Unlock()
	var line []byte
	for {
		chunk, err := s.br.ReadSlice('\n')
		if len(line) < s.cfg.LineLengthLimit {
			line = append(line, chunk[:min(len(chunk), s.cfg.LineLengthLimit-len(line))]...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	l := string(line)
	l = strings.TrimSuffix(l, "\n")
	l = strings.TrimSuffix(l, "\r")
	if s.cfg.notifyMask != 0 {
		// Postfix's command buffer is a C string: the history shows it
		// up to a NUL.
		h, _, _ := strings.Cut(l, "\x00")
		s.chat("In:  ", hideAuthResponse(h))
	}
	return l, nil
}

var errShutdown = errors.New("shutting down")

// command dispatches one command line. It returns errQuit to end the
// session normally and a read error from DATA to end it abnormally.
func (s *session) command(line string) error {
	// Postfix parses the line as a C string: a NUL ends it.
	if i := strings.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	verb, args := line, ""
	line = strings.TrimLeft(line, " \t")
	if i := strings.IndexAny(line, " \t"); i >= 0 {
		verb, args = line[:i], strings.TrimLeft(line[i:], " \t")
	} else {
		verb = line
	}
	s.classified = false
	if strings.TrimSpace(verb) == "" {
		s.fail(errProtocol)
		s.reply("500 5.5.2 Error: bad syntax")
		s.errorCount++
		return nil
	}
	if !utf8.ValidString(line) {
		s.fail(errProtocol)
		s.reply("500 5.5.2 Error: bad UTF-8 syntax")
		s.errorCount++
		return nil
	}
	cmd := strings.ToLower(verb)
	// smtpd_forbidden_commands default: CONNECT, GET, POST and anything not
	// starting with a letter; plus message headers sent as commands. Such a
	// peer is not an SMTP client (e.g. a web browser): hang up.
	if cmd == "connect" || cmd == "get" || cmd == "post" || !isLetter(verb[0]) || isHeaderName(verb) {
		s.where = "UNKNOWN"
		s.count("unknown", false)
		s.logf("warning: non-SMTP command from %s: %.100s", s.namaddr(), line)
		s.reply("221 2.7.0 Error: I can break rules, too. Goodbye.")
		return errQuit
	}
	if s.accessDenied && cmd != "quit" {
		s.where = strings.ToUpper(cmd)
		s.reply("503 5.7.0 Error: access denied for %s", s.namaddr())
		s.errorCount++
		return nil
	}
	var handler func(string) (bool, error)
	switch cmd {
	case "helo":
		handler = s.cmdHelo
	case "ehlo":
		handler = s.cmdEhlo
	case "mail":
		handler = s.cmdMail
	case "rcpt":
		handler = s.cmdRcpt
	case "data":
		handler = s.cmdData
	case "rset":
		handler = s.cmdRset
	case "noop":
		handler = s.cmdNoop
	case "vrfy":
		handler = s.cmdVrfy
	case "quit":
		handler = s.cmdQuit
	case "bdat":
		handler = s.cmdBdat
	case "etrn":
		handler = s.cmdEtrn
	case "auth":
		handler = s.cmdAuth
	case "starttls":
		handler = s.cmdStarttls
	case "xclient", "xforward":
		handler = s.cmdXclient
	default:
		s.where = "UNKNOWN"
		s.count("unknown", false)
		s.fail(errProtocol)
		s.reply("500 5.5.2 Error: command not recognized")
		s.errorCount++
		return nil
	}
	if s.needsTLS(cmd) {
		handler = s.refuseBeforeTLS
	}
	s.where = strings.ToUpper(cmd)
	ok, err := handler(args)
	s.count(cmd, ok)
	if !ok {
		s.errorCount++
		if !s.classified {
			// Postfix calls most refusals of a command protocol errors;
			// the others note their class where they answer.
			s.fail(errProtocol)
		}
	}
	if junkCommands[cmd] {
		s.junk++
		if s.junk > junkCommandLimit {
			s.errorCount++
		}
	}
	if err == nil && cmd == "quit" {
		return errQuit
	}
	return err
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func (s *session) count(cmd string, ok bool) {
	st := s.stats[cmd]
	if st == nil {
		st = &cmdStat{}
		s.stats[cmd] = st
	}
	st.total++
	if ok {
		st.ok++
	}
}

// resetTx forgets the mail transaction (RSET, HELO/EHLO, end of DATA).
func (s *session) resetTx() {
	s.bdat.close()
	s.bdat = nil
	s.inTx = false
	s.act = actions{}
	s.sender = ""
	s.bodyType, s.envID, s.ret = "", "", ""
	s.smtputf8 = false
	s.queueID = ""
	s.instance = ""
	s.auth.sender = ""
	s.rcpts = nil
	s.overshoot = 0
	s.msgSizeArg = 0
}

// hello is what HELO and EHLO share: the argument's syntax, the HELO
// restrictions when they are not delayed, and a fresh transaction. done is
// true when it has answered the command itself (with ok and err as the
// command's result).
func (s *session) hello(cmd, args string) (done, ok bool, err error) {
	if args == "" {
		s.reply("501 Syntax: %s hostname", cmd)
		return true, false, nil
	}
	helo := neuter(strings.Join(strings.Fields(args), " "))
	if s.cfg.NoDelayReject {
		if rerr := s.checkHeloCmd(helo); rerr != nil {
			ok, err := s.restrictionReply(rerr)
			return true, ok, err
		}
	}
	s.chatReset(s.cfg.HistoryFlushLimit)
	s.resetTx()
	s.helo = helo
	return false, true, nil
}

func (s *session) cmdHelo(args string) (bool, error) {
	if done, ok, err := s.hello("HELO", args); done {
		return ok, err
	}
	s.reply("250 %s", s.cfg.Hostname)
	return true, nil
}

func (s *session) cmdEhlo(args string) (bool, error) {
	if done, ok, err := s.hello("EHLO", args); done {
		return ok, err
	}
	s.protocol = "ESMTP"
	lines := []string{s.cfg.Hostname, "PIPELINING"}
	if s.cfg.MessageSizeLimit > 0 {
		lines = append(lines, "SIZE "+strconv.FormatInt(s.cfg.MessageSizeLimit, 10))
	} else {
		lines = append(lines, "SIZE")
	}
	// disable_vrfy_command=no is Postfix's default, and VRFY is announced.
	lines = append(lines, "VRFY", "ETRN")
	if s.tlsOffered() {
		lines = append(lines, "STARTTLS")
	}
	lines = s.ehloAuth(lines)
	lines = append(lines, "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING")
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		s.reply("250%s%s", sep, l)
	}
	return true, nil
}

func (s *session) cmdMail(args string) (bool, error) {
	if s.cfg.HeloRequired && s.helo == "" {
		s.fail(errPolicy)
		s.reply("503 5.5.1 Error: send HELO/EHLO first")
		return false, nil
	}
	if s.inTx {
		s.reply("503 5.5.1 Error: nested MAIL command")
		return false, nil
	}
	token, params, syntaxOK, tokOK := splitPath(args, "FROM:")
	if !syntaxOK {
		s.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
		return false, nil
	}
	if s.anvilRate(evMail, s.cfg.Anvil.MessageRate, "Message delivery request") {
		s.reply("450 4.7.1 Error: too much mail from %s", s.addr)
		return false, nil
	}
	sender, ok := extractAddr(token, true)
	if !tokOK || !ok {
		s.reply("501 5.1.7 Bad sender address syntax")
		return false, nil
	}
	var size int64
	var bodyType, envID, ret string
	var utf8Flag, haveEnvID, haveAuth bool
	for _, p := range params {
		key, val, _ := strings.Cut(p, "=")
		switch k := strings.ToUpper(key); {
		case strings.EqualFold(p, "BODY=8BITMIME"):
			bodyType = "8BITMIME"
		case strings.EqualFold(p, "BODY=7BIT"):
			bodyType = "7BIT"
		case k == "SIZE" && strings.Contains(p, "="):
			if !allDigits(val) {
				s.reply("501 5.5.4 Bad message size syntax")
				return false, nil
			}
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				s.fail(errPolicy)
				s.reply("552 5.3.4 Message size exceeds file system imposed limit")
				return false, nil
			}
			size = n
		case strings.EqualFold(p, "SMTPUTF8"):
			utf8Flag = true
		case k == "RET" && strings.Contains(p, "="):
			v := strings.ToUpper(val)
			if ret != "" || (v != "FULL" && v != "HDRS") {
				s.reply("501 5.5.4 Bad RET parameter syntax")
				return false, nil
			}
			ret = v
		case k == "ENVID" && strings.Contains(p, "="):
			dec, ok := envelope.DecodeXtext(val)
			if haveEnvID || !ok || !allPrint(dec) {
				s.reply("501 5.5.4 Bad ENVID parameter syntax")
				return false, nil
			}
			envID, haveEnvID = dec, true
		case k == "AUTH" && strings.Contains(p, "=") && s.authActive():
			if r := s.mailAuthParam(val, haveAuth); r != "" {
				s.reply("%s", r)
				return false, nil
			}
			haveAuth = true
		default:
			s.reply("555 5.5.4 Unsupported option: %s", p)
			return false, nil
		}
	}
	if s.cfg.MessageSizeLimit > 0 && size > s.cfg.MessageSizeLimit {
		s.fail(errPolicy)
		s.reject("MAIL", reply.New(552, "5.3.4", "Message size exceeds fixed limit"), sender, true, "")
		return false, nil
	}
	if s.cfg.NoDelayReject {
		if rerr := s.checkMailCmd(sender); rerr != nil {
			s.act = actions{} // side effects of a refused MAIL do not stay
			return s.restrictionReply(rerr)
		}
	}
	if rerr, warn := s.checkQueueSpace(); rerr != nil {
		s.act = actions{}
		s.fail(errResource)
		s.reject("MAIL", rerr, sender, false, "")
		warn()
		return false, nil
	}
	s.inTx = true
	s.sender = sender
	s.arrival = time.Now()
	s.bodyType, s.smtputf8, s.envID, s.ret = bodyType, utf8Flag, envID, ret
	s.msgSizeArg = size
	s.reply("250 2.1.0 Ok")
	return true, nil
}

func allDigits(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

func (s *session) cmdRcpt(args string) (bool, error) {
	if !s.inTx {
		s.reply("503 5.5.1 Error: need MAIL command")
		return false, nil
	}
	token, params, syntaxOK, tokOK := splitPath(args, "TO:")
	if !syntaxOK {
		s.reply("501 5.5.4 Syntax: RCPT TO:<address>")
		return false, nil
	}
	if s.anvilRate(evRcpt, s.cfg.Anvil.RecipientRate, "Recipient address") {
		s.reply("450 4.7.1 Error: too many recipients from %s", s.addr)
		return false, nil
	}
	addr, ok := extractAddr(token, false)
	if !tokOK || !ok {
		s.reply("501 5.1.3 Bad recipient address syntax")
		return false, nil
	}
	var notify, orcpt string
	for _, p := range params {
		key, val, _ := strings.Cut(p, "=")
		switch k := strings.ToUpper(key); {
		case k == "NOTIFY" && strings.Contains(p, "="):
			n, ok := parseNotify(val)
			if notify != "" || !ok {
				s.reply("501 5.5.4 Error: Bad NOTIFY parameter syntax")
				return false, nil
			}
			notify = n
		case k == "ORCPT" && strings.Contains(p, "="):
			o, ok := parseORCPT(val)
			if orcpt != "" || !ok {
				s.reply("501 5.5.4 Error: Bad ORCPT parameter syntax")
				return false, nil
			}
			orcpt = o
		default:
			s.reply("555 5.5.4 Unsupported option: %s", p)
			return false, nil
		}
	}
	if s.cfg.RecipientLimit > 0 && len(s.rcpts) >= s.cfg.RecipientLimit {
		s.reply("452 4.5.3 Error: too many recipients")
		// Postfix forgives the first smtpd_recipient_overshoot_limit of
		// these: a client may legitimately send more than we take.
		s.overshoot++
		if s.overshoot > recipientOvershootMax {
			s.fail(errPolicy)
			return false, nil
		}
		return true, nil
	}
	if rerr := s.checkRcpt(addr); rerr != nil {
		return s.restrictionReply(rerr)
	}
	if s.queueID == "" {
		s.queueID = queueid.New()
		if s.auth.user != "" {
			s.logf("%s: client=%s, sasl_method=%s, sasl_username=%s", s.queueID, s.namaddr(), s.auth.method, s.auth.user)
		} else {
			s.logf("%s: client=%s", s.queueID, s.namaddr())
		}
	}
	orig := token
	if len(orig) >= 2 && orig[0] == '<' && orig[len(orig)-1] == '>' {
		orig = orig[1 : len(orig)-1]
	}
	s.rcpts = append(s.rcpts, envelope.Recipient{Address: addr, Orig: orig, Notify: notify, ORCPT: orcpt})
	s.reply("250 2.1.5 Ok")
	return true, nil
}

// reject sends a restriction's reply and logs it the way Postfix's
// log_whatsup does; from= appears only when a sender is known.
func (s *session) reject(cmd string, rerr *reply.Error, sender string, haveSender bool, rcpt string) {
	s.reply("%s", rerr.String())
	id := s.queueID
	if id == "" {
		id = "NOQUEUE"
	}
	var b strings.Builder
	if haveSender {
		fmt.Fprintf(&b, " from=<%s>", rewrite.QuoteLocal(sender))
	}
	if rcpt != "" {
		fmt.Fprintf(&b, " to=<%s>", rewrite.QuoteLocal(rcpt))
	}
	fmt.Fprintf(&b, " proto=%s", s.protocol)
	if s.helo != "" {
		fmt.Fprintf(&b, " helo=<%s>", s.helo)
	}
	s.logf("%s: reject: %s from %s: %s;%s", id, cmd, s.namaddr(), rerr.String(), b.String())
}

func (s *session) cmdRset(args string) (bool, error) {
	if args != "" {
		s.reply("501 5.5.4 Syntax: RSET")
		return false, nil
	}
	s.chatReset(s.cfg.HistoryFlushLimit)
	s.resetTx()
	s.reply("250 2.0.0 Ok")
	return true, nil
}

func (s *session) cmdNoop(string) (bool, error) {
	s.reply("250 2.0.0 Ok")
	return true, nil
}

// cmdVrfy answers as Postfix does with disable_vrfy_command=no: the
// recipient restrictions run, then "252 2.0.0 <argument as given>" — never a
// definite answer.
func (s *session) cmdVrfy(args string) (bool, error) {
	arg := strings.Join(strings.Fields(args), " ")
	if arg == "" {
		s.reply("501 5.5.4 Syntax: VRFY address")
		return false, nil
	}
	addr, ok := extractAddr(arg, false)
	if !ok {
		s.reply("501 5.1.3 Bad recipient address syntax")
		return false, nil
	}
	if rerr := s.checkRcpt(addr); rerr != nil {
		return s.restrictionReply(rerr)
	}
	s.reply("252 2.0.0 %s", arg)
	return true, nil
}

func (s *session) cmdQuit(string) (bool, error) {
	s.reply("221 2.0.0 Bye")
	// Flush now, so a pipelined "." and QUIT are answered even if the
	// connection drops during cleanup.
	s.flush()
	return true, nil
}

func (s *session) cmdData(args string) (bool, error) {
	if s.bdat != nil {
		s.reply("503 5.5.1 Error: DATA after BDAT")
		return false, nil
	}
	if len(s.rcpts) == 0 {
		if !s.inTx {
			s.reply("503 5.5.1 Error: need RCPT command")
		} else {
			// Pipelining clients send DATA before they see their
			// recipients refused: no protocol error.
			s.fail(0)
			s.reply("554 5.5.1 Error: no valid recipients")
		}
		return false, nil
	}
	if args != "" {
		s.reply("501 5.5.4 Syntax: DATA")
		return false, nil
	}
	if rerr := s.checkData(false); rerr != nil {
		return s.restrictionReply(rerr)
	}
	s.mu.Lock()
	s.busy = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.busy = false
		s.mu.Unlock()
	}()

	s.reply("354 End data with <CR><LF>.<CR><LF>")
	if err := s.flush(); err != nil {
		return false, err
	}
	buf := spool.New(s.cfg.SpoolMemory, s.cfg.SpoolDir)
	defer buf.Close()
	tooBig, writeErr, err := s.readData(buf)
	if err != nil {
		return false, err
	}
	return s.finishMessage(buf, tooBig, writeErr, func() string {
		return "250 2.0.0 Ok: queued as " + s.queueID
	})
}

// finishMessage is what follows the end of the message, for DATA and the
// last BDAT: size and write errors, end-of-data restrictions, cleanup and
// the queue commit, and the reply okReply gives after that commit.
func (s *session) finishMessage(buf *spool.Buffer, tooBig bool, writeErr error, okReply func() string) (bool, error) {
	s.where = "END-OF-MESSAGE"
	defer s.resetTx()
	defer s.chatReset(s.cfg.HistoryFlushLimit)
	if tooBig {
		// cleanup_strerror(CLEANUP_STAT_SIZE) in Postfix.
		s.logf("warning: %s: queue file size limit exceeded", s.queueIDOr())
		s.fail(errBounce)
		s.reply("552 5.3.4 Error: message file too big")
		return false, nil
	}
	if writeErr != nil {
		s.logf("warning: %s: spool write error: %v", s.queueIDOr(), writeErr)
		s.fail(errResource)
		s.reply("451 4.3.0 Error: queue file write error")
		return false, nil
	}
	if rerr := s.checkData(true); rerr != nil {
		return s.restrictionReply(rerr)
	}
	env := &envelope.Envelope{
		QueueID:    s.queueID,
		Sender:     s.sender,
		Recipients: s.rcpts,
		Arrival:    s.arrival,
		ClientName: s.name,
		ClientAddr: s.addr,
		Helo:       s.helo,
		Protocol:   s.protocol,
		TLS:        s.tls != nil,
		SASLUser:   s.auth.user,
		SASLHeader: s.cfg.SASL.AuthenticatedHeader,
		BodyType:   s.bodyType,
		SMTPUTF8:   s.smtputf8,
		EnvID:      s.envID,
		Ret:        s.ret,
		Hold:       s.act.hold,
		Discard:    s.act.discard,
		Redirect:   s.act.redirect,
		Filter:     s.act.filter,
		Bcc:        s.act.bcc,
		Prepend:    s.act.prepend,
	}
	if err := s.cfg.Submitter.Submit(s.srv.base, env, buf.Reader()); err != nil {
		if rerr := reply.As(err); rerr != nil {
			s.fail(classOf(rerr))
			s.reply("%s", rerr.String())
		} else {
			s.logf("warning: %s: queue file write error: %v", s.queueID, err)
			s.fail(errResource)
			s.reply("451 4.3.0 Error: queue file write error")
		}
		return false, nil
	}
	// Like Postfix, forgive earlier client errors once a message got through.
	s.errorCount = 0
	s.errMask = 0
	s.junk = 0
	s.reply("%s", okReply())
	return true, nil
}

func (s *session) queueIDOr() string {
	if s.queueID == "" {
		return "NOQUEUE"
	}
	return s.queueID
}

// readData copies the message up to the lone "." into w: dot-unstuffed,
// every line ending normalised to CRLF, long lines kept whole. Past
// MessageSizeLimit it stops storing but keeps reading to the dot, so that the
// client can be told after the dot (it would not read a reply before).
func (s *session) readData(w io.Writer) (tooBig bool, writeErr, readErr error) {
	var size int64
	limit := s.cfg.MessageSizeLimit
	atStart := true    // the next chunk begins a line
	pendingCR := false // a chunk ended in '\r' that may be half of CRLF
	write := func(p []byte) {
		if tooBig || writeErr != nil {
			return
		}
		if limit > 0 && size+int64(len(p)) > limit {
			tooBig = true
			return
		}
		size += int64(len(p))
		if _, err := w.Write(p); err != nil {
			writeErr = err
		}
	}
	crlf := []byte("\r\n")
	for {
		s.conn.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
		chunk, err := s.br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return tooBig, writeErr, err
		}
		complete := err == nil // chunk ends with '\n'
		if pendingCR {
			pendingCR = false
			if len(chunk) > 0 && chunk[0] == '\n' {
				write(crlf)
				chunk = chunk[1:]
				atStart = true
				if len(chunk) == 0 {
					continue
				}
			} else {
				write([]byte{'\r'})
			}
		}
		if atStart && len(chunk) > 0 && chunk[0] == '.' {
			if complete && (string(chunk) == ".\r\n" || string(chunk) == ".\n") {
				return tooBig, writeErr, nil
			}
			chunk = chunk[1:]
		}
		if complete {
			body := chunk[:len(chunk)-1]
			body = trimCR(body)
			write(body)
			write(crlf)
			atStart = true
			continue
		}
		if n := len(chunk); n > 0 && chunk[n-1] == '\r' {
			chunk = chunk[:n-1]
			pendingCR = true
		}
		write(chunk)
		atStart = false
	}
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// restrictionReply sends a restriction's reply (already logged). A 421 or
// 521 reply ends the session, as in Postfix.
func (s *session) restrictionReply(rerr *reply.Error) (bool, error) {
	if rerr == s.chk.err && s.chk.errClass != 0 {
		s.fail(s.chk.errClass)
	} else {
		s.fail(classOf(rerr))
	}
	s.reply("%s", rerr.String())
	if s.chk.hangup {
		s.chk.hangup = false
		s.flush()
		return false, errHangup
	}
	return false, nil
}

// errHangup ends the session after a 421/521 restriction reply.
var errHangup = errors.New("hangup")
