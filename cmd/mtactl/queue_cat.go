package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"sqlmta/store"
)

// postcatMain is postcat -q ID [-e] [-h] [-b]: the envelope records Postfix prints for a queue file, then
// the message's headers and body from the store. Without -e/-h/-b everything is printed with Postfix's
// "*** … ***" section lines; with them only the chosen parts, bare.
func postcatMain(prog, dir string, args []string, stdout, stderr io.Writer) int {
	var env, hdr, body bool
	var ids []string
	rest, err := getopt(args, "bc:ehoq:rsv", func(c byte, arg string) {
		switch c {
		case 'b':
			body = true
		case 'c':
			dir = arg
		case 'e':
			env = true
		case 'h':
			hdr = true
		case 'q':
			ids = append(ids, arg)
		}
	})
	if err == nil && (len(rest) > 0 || len(ids) == 0) {
		err = errors.New("usage: postcat -q queue_id [-e] [-h] [-b]")
	}
	if err != nil {
		return queueFatal(stderr, prog, err)
	}
	all := !env && !hdr && !body
	ctx := context.Background()
	e, err := openQueue(ctx, dir)
	if err != nil {
		return queueFatal(stderr, prog, err)
	}
	defer e.Close()
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	for _, id := range ids {
		if err := e.cat(ctx, w, id, all || env, all || hdr, all || body, all || env); err != nil {
			w.Flush()
			if errors.Is(err, store.ErrNotFound) {
				fmt.Fprintf(stderr, "%s: fatal: open queue file %s: No such file or directory\n", prog, id)
			} else {
				fmt.Fprintf(stderr, "%s: fatal: %v\n", prog, err)
			}
			return 1
		}
	}
	return 0
}

// dsnNotify turns a NOTIFY list into Postfix's bit mask (dsn_mask.h: NEVER 1, SUCCESS 2, FAILURE 4,
// DELAY 8).
func dsnNotify(s string) int {
	mask := 0
	for _, w := range strings.Split(strings.ToUpper(s), ",") {
		switch strings.TrimSpace(w) {
		case "NEVER":
			mask |= 1
		case "SUCCESS":
			mask |= 2
		case "FAILURE":
			mask |= 4
		case "DELAY":
			mask |= 8
		}
	}
	return mask
}

// cat prints one message. The section lines name the file as Postfix would ("deferred/D/ID": deferred
// queue files are hashed one level deep by default), so scripts that parse them keep working.
func (e *queueEnv) cat(ctx context.Context, w *bufio.Writer, id string, env, hdr, body, sections bool) error {
	m, err := e.st.MessageGet(ctx, id)
	if err != nil {
		return err
	}
	queue := store.QueueOf(m.Recipients, time.Now())
	path := queue + "/" + id
	if queue == store.QueueDeferred {
		path = queue + "/" + id[:1] + "/" + id
	}
	if env {
		fmt.Fprintf(w, "*** ENVELOPE RECORDS %s ***\n", path)
		utf8 := 0
		if m.SMTPUTF8 {
			utf8 = 1
		}
		fmt.Fprintf(w, "message_size: %15d %15d %15d %15d %15d %15d\n", m.Size, 0, len(m.Recipients), 0, m.Size, utf8)
		fmt.Fprintf(w, "message_arrival_time: %s\n", asctime(m.Arrival))
		fmt.Fprintf(w, "create_time: %s\n", asctime(m.CreatedAt))
		fmt.Fprintf(w, "named_attribute: log_ident=%s\n", id)
		if m.Filter != "" {
			fmt.Fprintf(w, "content_filter: %s\n", m.Filter)
		}
		fmt.Fprintf(w, "sender: %s\n", m.Sender)
		attr := func(name, value string) {
			if value != "" {
				fmt.Fprintf(w, "named_attribute: %s=%s\n", name, value)
			}
		}
		attr("log_client_name", m.ClientName)
		attr("log_client_address", m.ClientAddr)
		attr("log_helo_name", m.Helo)
		attr("log_protocol_name", m.Protocol)
		attr("client_name", m.ClientName)
		attr("client_address", m.ClientAddr)
		attr("helo_name", m.Helo)
		attr("protocol_name", m.Protocol)
		if m.EnvID != "" {
			fmt.Fprintf(w, "dsn_envid: %s\n", m.EnvID)
		}
		if m.Ret != "" {
			ret := map[string]int{"FULL": 1, "HDRS": 2}[strings.ToUpper(m.Ret)]
			fmt.Fprintf(w, "dsn_ret: %d\n", ret)
		}
		for _, r := range m.Recipients {
			attr("dsn_orig_rcpt", r.ORCPT)
			if r.Notify != "" {
				fmt.Fprintf(w, "dsn_notify: %d\n", dsnNotify(r.Notify))
			}
			orig := r.Orig
			if orig == "" {
				orig = r.Address
			}
			fmt.Fprintf(w, "original_recipient: %s\n", orig)
			fmt.Fprintf(w, "recipient: %s\n", r.Address)
		}
	}
	if sections {
		fmt.Fprintf(w, "*** MESSAGE CONTENTS %s ***\n", path)
	}
	if hdr || body {
		if err := catContent(ctx, e.st, w, id, hdr, body); err != nil {
			return err
		}
	}
	if sections {
		fmt.Fprintf(w, "*** HEADER EXTRACTED %s ***\n", path)
		fmt.Fprintf(w, "*** MESSAGE FILE END %s ***\n", path)
	}
	return nil
}

// catContent streams the stored content with LF line ends, as postcat prints records: the header (up to
// the blank line) when hdr, the blank line and body when body.
func catContent(ctx context.Context, st store.Store, w *bufio.Writer, id string, hdr, body bool) error {
	rc, err := st.ContentOpen(ctx, id)
	if err != nil {
		return err
	}
	defer rc.Close()
	r := bufio.NewReaderSize(rc, 64<<10)
	inHeader := true
	for {
		line, err := r.ReadString('\n')
		if len(line) > 0 {
			text := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
			if inHeader && text == "" {
				inHeader = false
			}
			if (inHeader && hdr) || (!inHeader && body) {
				w.WriteString(text)
				w.WriteByte('\n')
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
