package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"sqlmta/mtad/pickup/maildrop"
)

// standalone is sendmail -bs: an SMTP session on stdin and stdout, as
// Postfix runs `smtpd -S`. Each message goes to the maildrop through
// postdrop like any other local submission (access restrictions do not
// apply: the uid is recorded instead), so it works while mtad is down.
func (o *sendOpts) standalone(stdin io.Reader, stdout io.Writer) int {
	cfg := sendConfig(o.dir)
	host := cfg.Get("myhostname")
	if host == "" {
		host, _ = os.Hostname()
	}
	limit, _ := cfg.Size("message_size_limit")
	banner := cfg.Get("smtpd_banner")
	if banner == "" {
		banner = host + " ESMTP " + cfg.Get("mail_name")
	}
	br := bufio.NewReader(stdin)
	bw := bufio.NewWriter(stdout)
	reply := func(lines ...string) {
		for i, l := range lines {
			sep := " "
			if i < len(lines)-1 {
				sep = "-"
			}
			fmt.Fprintf(bw, "%s%s%s\r\n", l[:3], sep, l[min(4, len(l)):])
		}
		// Replies wait while the client has pipelined more commands.
		if br.Buffered() == 0 {
			bw.Flush()
		}
	}
	defer bw.Flush()
	reply("220 " + banner)
	var env *maildrop.Envelope
	for {
		line, err := br.ReadString('\n')
		if err != nil && line == "" {
			return 0
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "HELO":
			if arg == "" {
				reply("501 Syntax: HELO hostname")
				continue
			}
			env = nil
			reply("250 " + host)
		case "EHLO":
			if arg == "" {
				reply("501 Syntax: EHLO hostname")
				continue
			}
			env = nil
			reply("250 "+host, "250 PIPELINING", "250 SIZE "+strconv.FormatInt(limit, 10), "250 ENHANCEDSTATUSCODES", "250 8BITMIME")
		case "MAIL":
			if env != nil {
				reply("503 5.5.1 Error: nested MAIL command")
				continue
			}
			addr, params, ok := smtpPath(arg, "FROM:")
			if !ok {
				reply("501 5.5.4 Syntax: MAIL FROM:<address>")
				continue
			}
			env = &maildrop.Envelope{Sender: addr}
			for _, p := range params {
				k, v, _ := strings.Cut(p, "=")
				if strings.EqualFold(k, "BODY") {
					env.BodyType = strings.ToUpper(v)
				}
			}
			reply("250 2.1.0 Ok")
		case "RCPT":
			if env == nil {
				reply("503 5.5.1 Error: need MAIL command")
				continue
			}
			addr, _, ok := smtpPath(arg, "TO:")
			if !ok || addr == "" {
				reply("501 5.5.4 Syntax: RCPT TO:<address>")
				continue
			}
			env.Recipients = append(env.Recipients, addr)
			reply("250 2.1.5 Ok")
		case "DATA":
			if env == nil {
				reply("503 5.5.1 Error: need MAIL command")
				continue
			}
			if len(env.Recipients) == 0 {
				reply("503 5.5.1 Error: need RCPT command")
				continue
			}
			reply("354 End data with <CR><LF>.<CR><LF>")
			content, err := readDotted(br)
			if err != nil {
				return 0
			}
			if limit > 0 && int64(len(content)) > limit {
				reply("552 5.3.4 Error: message file too big")
			} else if id, err := o.drop(env, bytes.NewReader(content)); err != nil {
				reply("451 4.3.0 Error: queue file write error")
			} else {
				reply("250 2.0.0 Ok: queued as " + id)
			}
			env = nil
		case "RSET":
			env = nil
			reply("250 2.0.0 Ok")
		case "NOOP":
			reply("250 2.0.0 Ok")
		case "VRFY":
			reply("502 5.5.1 VRFY command is disabled")
		case "QUIT":
			reply("221 2.0.0 Bye")
			return 0
		default:
			reply("502 5.5.2 Error: command not recognized")
		}
	}
}

// smtpPath parses "FROM:<addr> params" (or TO:).
func smtpPath(arg, prefix string) (string, []string, bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", nil, false
	}
	rest := strings.TrimLeft(arg[len(prefix):], " ")
	if !strings.HasPrefix(rest, "<") {
		return "", nil, false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", nil, false
	}
	return rest[1:end], strings.Fields(rest[end+1:]), true
}

// readDotted reads DATA up to the lone dot, undoing dot-stuffing, with LF
// line ends (the maildrop's form).
func readDotted(br *bufio.Reader) ([]byte, error) {
	var b []byte
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "." {
			return b, nil
		}
		line = strings.TrimPrefix(line, ".")
		b = append(b, line...)
		b = append(b, '\n')
	}
}
