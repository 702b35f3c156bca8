package config

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// Service is one SMTP listener from master.cf: an inet service whose command
// is smtpd.
type Service struct {
	Name string // the service field as written: "smtp", "127.0.0.1:2525", …

	// Listen is a host:port for net.Listen. A service without a host
	// (":25") means "the addresses in inet_interfaces"; the caller decides.
	Listen string

	// Overrides are the -o name=value options, raw (unexpanded), to be
	// applied with Config.With.
	Overrides map[string]string

	// MaxProc is the maxproc column: -1 for "-" (default_process_limit),
	// 0 for no limit, otherwise the most sessions at once.
	MaxProc int

	File string
	Line int
}

// masterTypes are the service types master(5) knows.
var masterTypes = map[string]bool{"inet": true, "unix": true, "unix-dgram": true, "fifo": true, "pass": true}

// LoadMaster reads dir/master.cf and returns its smtpd inet services in file
// order. A missing master.cf yields nil, nil: the caller then listens on smtp
// per inet_interfaces. Every line is checked; lines for other services are
// skipped, since sqlmta runs its other stages itself.
func LoadMaster(dir string) ([]Service, error) {
	return loadMaster(dir, ParseMaster)
}

// ParseMaster parses master.cf text; name is used in errors.
func ParseMaster(name string, r io.Reader) ([]Service, error) {
	lines, err := readLogicalLines(name, r)
	if err != nil {
		return nil, err
	}
	var out []Service
	for _, l := range lines {
		if l.warning != "" {
			continue
		}
		s, keep, err := parseMasterLine(name, l)
		if err != nil {
			return nil, err
		}
		if keep {
			out = append(out, s)
		}
	}
	return out, nil
}

func parseMasterLine(file string, l logicalLine) (Service, bool, error) {
	bad := func(format string, args ...any) (Service, bool, error) {
		return Service{}, false, &ParseError{File: file, Line: l.line, Msg: fmt.Sprintf(format, args...)}
	}
	f := strings.Fields(l.text)
	if len(f) < 8 {
		return bad("expected at least 8 fields (service type private unpriv chroot wakeup maxproc command), found %d", len(f))
	}
	service, typ := f[0], f[1]
	if !masterTypes[typ] {
		return bad("bad transport type: %s", typ)
	}
	for i, field := range []string{"private", "unpriv", "chroot"} {
		if v := f[2+i]; v != "y" && v != "n" && v != "-" {
			return bad("field \"%s\": bad value: \"%s\"", field, v)
		}
	}
	if w := strings.TrimSuffix(f[5], "?"); w != "-" && !allDigits(w) {
		return bad("field \"wakeup\": bad value: \"%s\"", f[5])
	}
	maxProc := -1
	if f[6] != "-" {
		n, err := strconv.Atoi(f[6])
		if err != nil || !allDigits(f[6]) {
			return bad("field \"maxproc\": bad value: \"%s\"", f[6])
		}
		maxProc = n
	}
	// The command and its arguments: split on whitespace, keeping { … }
	// groups whole, as master(8) does for "-o { name = value }".
	args := splitArgs(f, l.text)
	cmd := args[0]
	overrides := map[string]string{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		var opt string
		switch {
		case a == "-o":
			if i+1 >= len(args) {
				return bad("option -o requires a name=value argument")
			}
			i++
			opt = args[i]
		case strings.HasPrefix(a, "-o"):
			opt = a[2:]
		default:
			continue // other daemon flags (-v, -D, …) are accepted and ignored
		}
		if strings.HasPrefix(opt, "{") {
			s, err := stripBraces(opt)
			if err != nil {
				return bad("%v", err)
			}
			opt = s
		}
		k, v, ok := strings.Cut(opt, "=")
		k = strings.TrimSpace(k)
		if !ok || !isName(k) {
			return bad("bad -o option: \"%s\": expected name=value", opt)
		}
		overrides[k] = strings.TrimSpace(v)
	}
	if typ != "inet" || cmd != "smtpd" {
		return Service{}, false, nil
	}
	listen, err := inetListen(service)
	if err != nil {
		return bad("%v", err)
	}
	return Service{Name: service, Listen: listen, Overrides: overrides, MaxProc: maxProc, File: file, Line: l.line}, true, nil
}

// splitArgs returns the command and its arguments. fields is the plain
// whitespace split of the line; when the command part holds braces it is
// re-split so that { … } groups stay whole.
func splitArgs(fields []string, line string) []string {
	rest := line
	for i := 0; i < 7; i++ {
		rest = strings.TrimLeft(rest, " \t")
		rest = rest[len(fields[i]):]
	}
	if !strings.Contains(rest, "{") {
		return fields[7:]
	}
	var args []string
	for {
		rest = strings.TrimLeft(rest, " \t\r\n")
		if rest == "" {
			return args
		}
		level, end := 0, len(rest)
	scan:
		for i := 0; i < len(rest); i++ {
			switch c := rest[i]; {
			case c == '{':
				level++
			case c == '}' && level > 0:
				level--
			case level == 0 && isSpace(c):
				end = i
				break scan
			}
		}
		args = append(args, rest[:end])
		rest = rest[end:]
	}
}

// wellKnownPorts covers the service names master.cf uses for SMTP, so that
// the result does not depend on /etc/services being installed.
var wellKnownPorts = map[string]string{
	"smtp": "25", "submission": "587", "submissions": "465", "smtps": "465", "lmtp": "24",
}

// inetListen turns a master.cf inet service field ([host:]port, where host
// may be a bracketed IPv6 address and port a service name) into host:port.
func inetListen(service string) (string, error) {
	host, port := "", service
	if i := strings.LastIndexByte(service, ':'); i >= 0 {
		host, port = service[:i], service[i+1:]
		if strings.HasPrefix(host, "[") != strings.HasSuffix(host, "]") {
			return "", fmt.Errorf("bad inet service address: %q", service)
		}
	}
	if port == "" {
		return "", fmt.Errorf("bad inet service: %q: no port", service)
	}
	if !allDigits(port) {
		p, ok := wellKnownPorts[port]
		if !ok {
			n, err := net.LookupPort("tcp", port)
			if err != nil {
				return "", fmt.Errorf("unknown service name %q in %q", port, service)
			}
			p = strconv.Itoa(n)
		}
		port = p
	} else if n, err := strconv.Atoi(port); err != nil || n > 65535 {
		return "", fmt.Errorf("bad port number in %q", service)
	}
	return host + ":" + port, nil
}
