package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"sqlmta/config"
	"sqlmta/mtad/cleanup"
	"sqlmta/mtad/pickup/maildrop"
)

// sendmail's modes of operation (Postfix sendmail.c SM_MODE_*).
const (
	smEnqueue = iota
	smNewAlias
	smMailq
	smDaemon
	smUser // -bs
	smFlushq
	smIgnore
)

// exTempFail is the exit status of every fatal error of Postfix's
// sendmail: its run-time error handler exits EX_TEMPFAIL before the status
// that msg_fatal_status names.
const exTempFail = 75

// sendOpts are sendmail's parsed options.
type sendOpts struct {
	prog      string
	dir       string
	mode      int
	extract   bool // -t
	aeof      bool // a lone "." ends the input (cleared by -i, -oi)
	sender    *string
	fullName  *string
	remote    bool // -G
	notify    string
	ret       string
	envid     string
	bodyType  string
	site, id  string // -qR, -qI
	qtime     string // -qINTERVAL: ignored
	aliasDB   string // -oA
	verbose   int
	rcpts     []string
	stdout    io.Writer
	stderr    io.Writer
	postdrop  string // the helper; "" finds it beside this executable
	uid       int
	loginName func() (name, gecos string, err error)
}

// fatal prints Postfix's fatal line and returns sendmail's exit status.
func (o *sendOpts) fatal(format string, args ...any) int {
	fmt.Fprintf(o.stderr, "%s: fatal: "+format+"\n", append([]any{o.prog}, args...)...)
	return exTempFail
}

func (o *sendOpts) warn(format string, args ...any) {
	fmt.Fprintf(o.stderr, "%s: warning: "+format+"\n", append([]any{o.prog}, args...)...)
}

// sendMain is sendmail (called through that link) and `mtactl send`: the
// flags of Postfix's sendmail(1). Mail goes to the maildrop through the
// set-gid postdrop helper, so it needs neither a running mtad nor the
// database.
func sendMain(prog, dir string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o := &sendOpts{prog: prog, dir: dir, aeof: true, stdout: stdout, stderr: stderr, uid: os.Getuid(),
		loginName: currentUser, postdrop: postdropForTest}
	return o.main(args, stdin)
}

// main parses args and runs the chosen mode.
func (o *sendOpts) main(args []string, stdin io.Reader) int {
	switch o.prog {
	case "mailq":
		o.mode = smMailq
	case "newaliases":
		o.mode = smNewAlias
	}
	// Like Postfix, a first pass finds -C so that main.cf is the right one
	// (and reports a bad option once there too).
	if _, st := o.parse(args, true); st == parseOK {
		rest, st := o.parse(args, false)
		switch st {
		case parseOK:
			o.rcpts = rest
			return o.run(stdin)
		case parseFatal:
			return exTempFail
		}
	}
	return o.fatal("usage: %s [options]", o.prog)
}

// parse results: go on, print the usage line, or stop (already reported).
const (
	parseOK = iota
	parseUsage
	parseFatal
)

// parse reads the options as Postfix's GETOPT_LIST
// "A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx", stopping at the first
// non-option, with Sendmail's irregular -q, -V xy and -XV. With onlyC it
// only records -C.
func (o *sendOpts) parse(args []string, onlyC bool) (rest []string, status int) {
	const spec = "A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx"
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			return args[1:], parseOK
		}
		if len(a) < 2 || a[0] != '-' {
			return args, parseOK
		}
		args = args[1:]
		switch {
		case a == "-q":
			if !onlyC {
				if o.mode == smDaemon {
					o.warn("ignoring -q option in daemon mode")
				} else {
					o.mode = smFlushq
				}
			}
			continue
		case a == "-V" && len(args) > 0 && len(args[0]) == 2:
			if !onlyC {
				o.warn("option -V is deprecated with Postfix 2.3; specify -XV instead")
			}
			a, args = "-XV", args[1:]
		case strings.HasPrefix(a, "-V") && len(a) == 4:
			if !onlyC {
				o.warn("option %s is deprecated with Postfix 2.3; specify -X%s instead", a, a[1:])
			}
			a = "-X" + a[1:]
		}
		if a == "-XV" {
			continue // VERP with the default delimiters: not supported, ignored
		}
		for i := 1; i < len(a); i++ {
			c := a[i]
			j := strings.IndexByte(spec, c)
			if j < 0 || c == ':' {
				fmt.Fprintf(o.stderr, "%s: invalid option -- '%c'\n", o.prog, c)
				if onlyC {
					continue // Postfix's pre-scan reports it and goes on
				}
				return nil, parseUsage
			}
			arg := ""
			if j+1 < len(spec) && spec[j+1] == ':' {
				arg = a[i+1:]
				if arg == "" {
					if len(args) == 0 {
						fmt.Fprintf(o.stderr, "%s: option requires an argument -- '%c'\n", o.prog, c)
						if onlyC {
							return nil, parseOK
						}
						return nil, parseUsage
					}
					arg, args = args[0], args[1:]
				}
				i = len(a)
			}
			if onlyC {
				if c == 'C' {
					o.dir = arg
					if filepath.Base(arg) == "main.cf" {
						o.dir = filepath.Dir(arg)
					}
				}
				continue
			}
			if !o.option(c, arg) {
				return nil, parseFatal
			}
		}
	}
	return nil, parseOK
}

// option applies one option. It returns false when the option is fatal,
// after printing why.
func (o *sendOpts) option(c byte, arg string) bool {
	fatal := func(format string, args ...any) bool {
		o.fatal(format, args...)
		return false
	}
	switch c {
	case 'n':
		return fatal("-%c option not supported", c)
	case 'B':
		switch arg {
		case "8BITMIME", "7BIT":
			o.bodyType = arg
		default:
			return fatal("-B option needs 8BITMIME or 7BIT")
		}
	case 'F':
		o.fullName = &arg
	case 'G':
		o.remote = true
	case 'I':
		o.mode = smNewAlias
	case 'N':
		if n, ok := dsnNotifyOption(arg, o); ok {
			o.notify = n
		} else {
			o.warn("bad -N option value -- ignored")
		}
	case 'R':
		switch strings.ToLower(arg) {
		case "full":
			o.ret = "FULL"
		case "hdrs":
			o.ret = "HDRS"
		default:
			o.warn("bad -R option value -- ignored")
		}
	case 'V':
		switch {
		case len(arg) > 100:
			o.warn("too long -V option value -- ignored")
		case !allPrint(arg):
			o.warn("bad syntax in -V option value -- ignored")
		default:
			o.envid = arg
		}
	case 'X':
		if !strings.HasPrefix(arg, "V") {
			return fatal("unsupported: -%c%c", c, first(arg))
		}
		if len(arg) != 3 || strings.IndexByte("-=+", arg[1]) < 0 || strings.IndexByte("-=+", arg[2]) < 0 {
			return fatal("-V requires two characters from -=+")
		}
		// VERP: not supported by the queue; accepted and ignored.
	case 'b':
		switch first(arg) {
		case 'd', 'l':
			if o.mode == smFlushq {
				o.warn("ignoring -q option in daemon mode")
			}
			o.mode = smDaemon
		case 'h', 'H':
			o.mode = smIgnore
		case 'i':
			o.mode = smNewAlias
		case 'm':
			o.mode = smEnqueue
		case 'p':
			o.mode = smMailq
		case 's':
			o.mode = smUser
		default:
			// -bv (verify by mail) included: no address verification here.
			return fatal("unsupported: -%c%c", c, first(arg))
		}
	case 'f', 'r':
		o.sender = &arg
	case 'i':
		o.aeof = false
	case 'o':
		switch first(arg) {
		case 'A':
			if len(arg) == 1 {
				return fatal("-oA requires pathname")
			}
			o.aliasDB = arg[1:]
		case 'i':
			o.aeof = false
		}
	case 'q':
		switch {
		case arg[0] >= '0' && arg[0] <= '9':
			o.qtime = arg
		case arg[0] == 'R':
			if o.site = arg[1:]; o.site == "" {
				return fatal("specify: -qRsitename")
			}
		case arg[0] == 'I':
			if o.id = arg[1:]; o.id == "" {
				return fatal("specify: -qIqueueid")
			}
		default:
			return fatal("-q%c is not implemented", arg[0])
		}
	case 't':
		o.extract = true
	case 'v':
		o.verbose++
	}
	// A, C, L, O, U, c, e, h, m, p, x and other -o options: Sendmail's,
	// ignored as Postfix ignores them.
	return true
}

func first(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}

func allPrint(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// dsnNotifyOption parses -N: "never", or a comma list of success, failure
// and delay, as Postfix's dsn_notify_mask.
func dsnNotifyOption(arg string, o *sendOpts) (string, bool) {
	var out []string
	never := false
	for _, w := range strings.FieldsFunc(arg, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		switch u := strings.ToUpper(w); u {
		case "NEVER":
			never = true
		case "SUCCESS", "FAILURE", "DELAY":
			out = append(out, u)
		default:
			o.warn("unknown DSN NOTIFY command value %q in %q", w, arg)
			return "", false
		}
	}
	if never {
		if len(out) > 0 {
			return "", false
		}
		return "NEVER", true
	}
	return strings.Join(out, ","), len(out) > 0
}

// run carries out the mode the options chose.
func (o *sendOpts) run(stdin io.Reader) int {
	if o.extract && o.mode != smEnqueue {
		return o.fatal("-t can be used only in delivery mode")
	}
	if o.site != "" && o.mode != smEnqueue {
		return o.fatal("-qR can be used only in delivery mode")
	}
	if o.id != "" && o.mode != smEnqueue {
		return o.fatal("-qI can be used only in delivery mode")
	}
	if o.qtime != "" && o.mode != smDaemon {
		return 0
	}
	noRcpt := func(what string) int {
		return o.fatal("%s requires no recipient", what)
	}
	switch o.mode {
	case smEnqueue:
		switch {
		case o.site != "":
			if len(o.rcpts) > 0 {
				return o.fatal("flush site requires no recipient")
			}
			return postqueueMain("postqueue", o.dir, []string{"-s", o.site}, o.stdout, o.stderr)
		case o.id != "":
			if len(o.rcpts) > 0 {
				return o.fatal("flush queue_id requires no recipient")
			}
			return postqueueMain("postqueue", o.dir, []string{"-i", o.id}, o.stdout, o.stderr)
		}
		return o.enqueue(stdin)
	case smMailq:
		if len(o.rcpts) > 0 {
			return noRcpt("display queue mode")
		}
		return postqueueMain("postqueue", o.dir, []string{"-p"}, o.stdout, o.stderr)
	case smFlushq:
		if len(o.rcpts) > 0 {
			return noRcpt("flush queue mode")
		}
		return postqueueMain("postqueue", o.dir, []string{"-f"}, o.stdout, o.stderr)
	case smDaemon:
		if len(o.rcpts) > 0 {
			return noRcpt("daemon mode")
		}
		return postfixMain("postfix", o.dir, []string{"start"}, o.stdout, o.stderr)
	case smNewAlias:
		if len(o.rcpts) > 0 {
			return noRcpt("alias initialization mode")
		}
		var a []string
		if o.aliasDB != "" {
			a = strings.FieldsFunc(o.aliasDB, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
		}
		return aliasesMain("newaliases", o.dir, append([]string{"-c", o.dir}, a...), o.stdout, o.stderr)
	case smUser:
		if len(o.rcpts) > 0 {
			return noRcpt("stand-alone mode")
		}
		return o.standalone(stdin, o.stdout)
	}
	return 0 // smIgnore
}

// currentUser is the login name and GECOS name of the real uid.
func currentUser() (string, string, error) {
	u, err := user.LookupId(strconv.Itoa(os.Getuid()))
	if err != nil {
		return "", "", err
	}
	return u.Username, u.Name, nil
}

// envelopeSender is -f's first address, or the login name.
func (o *sendOpts) envelopeSender() (string, error) {
	if o.sender != nil {
		addrs := cleanup.HeaderAddresses(*o.sender)
		if len(addrs) > 1 {
			o.warn("-f option specified malformed sender: %s", *o.sender)
		}
		if len(addrs) == 0 {
			return "", nil
		}
		return addrs[0], nil
	}
	name, _, err := o.loginName()
	if err != nil || name == "" {
		return "", fmt.Errorf("no login name found for user ID %d", o.uid)
	}
	return name, nil
}

// fullNameOf is -F, else $NAME, else the GECOS name (Postfix's fullname()).
func (o *sendOpts) fullNameOf() string {
	if o.fullName != nil {
		return *o.fullName
	}
	if n := os.Getenv("NAME"); n != "" {
		return n
	}
	_, gecos, _ := o.loginName()
	if i := strings.IndexByte(gecos, ','); i >= 0 {
		gecos = gecos[:i]
	}
	return gecos
}

// enqueue reads one message and hands it to postdrop.
func (o *sendOpts) enqueue(stdin io.Reader) int {
	sender, err := o.envelopeSender()
	if err != nil {
		return o.fatal("%v", err)
	}
	env := &maildrop.Envelope{
		Sender: sender, FullName: o.fullNameOf(), Notify: o.notify, Ret: o.ret, EnvID: o.envid,
		BodyType: o.bodyType, Remote: o.remote,
	}
	// Each command-line recipient is parsed like a header, as Sendmail
	// does: "a@b, c@d" and "Name <addr>" work; no address at all is the
	// empty recipient.
	for _, r := range o.rcpts {
		addrs := cleanup.HeaderAddresses(r)
		if len(addrs) == 0 {
			addrs = []string{""}
		}
		env.Recipients = append(env.Recipients, addrs...)
	}
	in := newMessageReader(stdin, o.aeof)
	header, err := in.header()
	if err != nil {
		return o.fatal("%s(%d): error reading input: %v", sender, o.uid, err)
	}
	if o.extract {
		env.Extracted = extractRecipients(header)
	}
	if len(env.Recipients)+len(env.Extracted) == 0 {
		if o.extract {
			return o.fatal("%s(%d): No recipient addresses found in message header", sender, o.uid)
		}
		return o.fatal("%s(%d): Recipient addresses must be specified on the command line or via the -t option", sender, o.uid)
	}
	_, err = o.drop(env, io.MultiReader(bytes.NewReader(header), in))
	if err != nil {
		return o.fatal("%s(%d): %v", sender, o.uid, err)
	}
	return 0
}

// postdropForTest, when set, replaces the helper beside the executable
// (the test binary has none).
var postdropForTest string

// postdropPath is the helper beside this executable.
func (o *sendOpts) postdropPath() (string, error) {
	if o.postdrop != "" {
		return o.postdrop, nil
	}
	return besideExecutable("postdrop")
}

// drop runs postdrop with the envelope and content and returns the name
// of the maildrop file it wrote.
func (o *sendOpts) drop(env *maildrop.Envelope, content io.Reader) (string, error) {
	path, err := o.postdropPath()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(path, "-r", "-c", o.dir)
	cmd.Stderr = o.stderr
	var out bytes.Buffer
	cmd.Stdout = &out
	w, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("unable to execute %s -r: %v", path, err)
	}
	werr := maildrop.Write(w, env, false)
	if werr == nil {
		_, werr = io.Copy(w, content)
	}
	w.Close()
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		if ee.ExitCode() == 69 {
			return "", fmt.Errorf("Message file too big")
		}
		return "", fmt.Errorf("queue file write error")
	}
	if err != nil {
		return "", err
	}
	if werr != nil {
		return "", fmt.Errorf("error writing queue file: %v", werr)
	}
	return strings.TrimSpace(out.String()), nil
}

// extractRecipients is sendmail -t: the addresses of To:, Cc: and Bcc:,
// or of Resent-To:, Resent-Cc: and Resent-Bcc: once one of those is seen.
func extractRecipients(header []byte) []string {
	var plain, resent []string
	isResent := false
	for _, f := range headerFields(header) {
		name, value, ok := strings.Cut(f, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "to", "cc", "bcc":
			if !isResent {
				plain = append(plain, cleanup.HeaderAddresses(value)...)
			}
		case "resent-to", "resent-cc", "resent-bcc":
			isResent = true
			resent = append(resent, cleanup.HeaderAddresses(value)...)
		}
	}
	if isResent {
		return resent
	}
	return plain
}

// headerFields splits a header block into unfolded fields.
func headerFields(header []byte) []string {
	var out []string
	for _, line := range strings.SplitAfter(string(header), "\n") {
		l := strings.TrimRight(line, "\r\n")
		if l == "" {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && len(out) > 0 {
			out[len(out)-1] += " " + strings.TrimSpace(l)
			continue
		}
		out = append(out, l)
	}
	return out
}

// messageReader reads sendmail's input as Postfix does: leading "From "
// lines dropped, CRs stripped when the first line ends in CRLF
// (sendmail_fix_line_endings = strict), and, unless -i, a line with only
// "." ends the message. It yields LF-terminated lines.
type messageReader struct {
	br      *bufio.Reader
	aeof    bool
	started bool // past the leading "From " lines
	stripCR int  // 0 undecided, 1 strip, -1 keep
	done    bool
	pending []byte
}

func newMessageReader(r io.Reader, aeof bool) *messageReader {
	return &messageReader{br: bufio.NewReaderSize(r, 64*1024), aeof: aeof}
}

// line returns the next line with its LF ("" and io.EOF at the end).
func (m *messageReader) line() ([]byte, error) {
	for !m.done {
		line, err := m.br.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			m.done = true
			return nil, err
		}
		body := bytes.TrimSuffix(line, []byte("\n"))
		if m.stripCR == 0 {
			m.stripCR = -1
			if bytes.HasSuffix(body, []byte("\r")) {
				m.stripCR = 1
			}
		}
		if m.stripCR == 1 {
			body = bytes.TrimRight(body, "\r")
		}
		if !m.started {
			if bytes.HasPrefix(bytes.TrimLeft(body, ">"), []byte("From ")) {
				continue
			}
			m.started = true
		}
		if m.aeof && string(body) == "." {
			m.done = true
			return nil, io.EOF
		}
		out := append(body, '\n')
		if err != nil && err != io.EOF {
			m.done = true
			return out, err
		}
		return out, nil
	}
	return nil, io.EOF
}

// header reads the primary header block (up to and including the empty
// line, or the first line that is not a header), for -t.
func (m *messageReader) header() ([]byte, error) {
	var h []byte
	for {
		line, err := m.line()
		if err == io.EOF {
			return h, nil
		}
		if err != nil {
			return nil, err
		}
		h = append(h, line...)
		l := strings.TrimRight(string(line), "\n")
		if l == "" {
			return h, nil
		}
		if l[0] != ' ' && l[0] != '\t' && !strings.Contains(l, ":") {
			return h, nil
		}
		if len(h) > 10<<20 {
			return h, nil // the rest is body as far as -t is concerned
		}
	}
}

func (m *messageReader) Read(b []byte) (int, error) {
	for len(m.pending) == 0 {
		line, err := m.line()
		m.pending = line
		if err != nil && len(line) == 0 {
			return 0, err
		}
	}
	n := copy(b, m.pending)
	m.pending = m.pending[n:]
	return n, nil
}

// sendConfig loads main.cf for the few settings sendmail reads itself; an
// unreadable main.cf (mode 0640 to keep database_url from users) gives the
// defaults.
func sendConfig(dir string) *config.Config {
	cfg, err := config.Load(dir)
	if err != nil {
		cfg, _ = config.Parse("main.cf", strings.NewReader(""))
	}
	return cfg
}
