package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"sqlmta/mtad/maillog"
	"sqlmta/store"
)

// superOp is one postsuper operation: its IDs, whether ALL was asked, and the queues it applies to by
// default (postsuper(1)).
type superOp struct {
	ids      []string
	all      bool
	defaults []string
}

var allQueues = []string{store.QueueHold, store.QueueIncoming, store.QueueActive, store.QueueDeferred}

// postsuperMain is postsuper: -d (delete), -h (hold), -H (release), -r (requeue), -e and -f (expire; -f
// also releases), each with a queue ID, ALL, or "-" for IDs on stdin; the remaining arguments name the
// queues. Like Postfix it reports each message it changed (for explicit IDs) and a summary per operation
// on stderr and in the mail log.
func postsuperMain(prog, dir string, args []string, stdin io.Reader, stderr io.Writer) int {
	ops := map[byte]*superOp{
		'd': {defaults: allQueues},
		'e': {defaults: allQueues},
		'f': {defaults: allQueues},
		'h': {defaults: []string{store.QueueIncoming, store.QueueActive, store.QueueDeferred}},
		'H': {defaults: []string{store.QueueHold}},
		'r': {defaults: allQueues},
	}
	var stdinErr error
	rest, err := getopt(args, "c:d:e:f:h:H:r:psSv", func(c byte, arg string) {
		op := ops[c]
		switch {
		case c == 'c':
			dir = arg
		case op == nil: // -p, -s, -S: there are no queue files to purge or repair; -v
		case arg == "ALL":
			op.all = true
		case arg == "-":
			ids, err := readIDs(stdin)
			op.ids = append(op.ids, ids...)
			stdinErr = errors.Join(stdinErr, err)
		default:
			op.ids = append(op.ids, arg)
		}
	})
	fatal := func(err error) int { return queueFatal(stderr, prog, err) }
	if err == nil {
		err = stdinErr
	}
	if err != nil {
		return fatal(err)
	}
	for _, q := range rest {
		if !slices.Contains(allQueues, q) && q != "maildrop" {
			return fatal(fmt.Errorf("invalid directory name: %s", q))
		}
	}
	ctx := context.Background()
	e, err := openQueue(ctx, dir)
	if err != nil {
		return fatal(err)
	}
	defer e.Close()
	log, closeLog := e.maillog()
	defer closeLog()
	s := &super{e: e, queues: rest, stderr: stderr, log: log}

	type step struct {
		c       byte
		summary string
		event   string
		run     func(ids []string) ([]string, error)
	}
	adm := e.admin
	var released int
	steps := []step{
		{'d', "Deleted", "removed", func(ids []string) ([]string, error) { return adm.MessagesDelete(ctx, ids) }},
		{'e', "Force-expired", "expired", func(ids []string) ([]string, error) {
			got, _, err := adm.MessagesExpire(ctx, ids, false)
			return got, err
		}},
		{'f', "Force-expired", "expired", func(ids []string) ([]string, error) {
			got, rel, err := adm.MessagesExpire(ctx, ids, true)
			released += len(rel)
			s.report(rel, ops['f'], "released from hold")
			return got, err
		}},
		{'r', "Requeued", "requeued", func(ids []string) ([]string, error) { return adm.MessagesRequeue(ctx, ids) }},
		{'h', "Placed on hold", "placed on hold", func(ids []string) ([]string, error) { return adm.MessagesHold(ctx, ids) }},
		{'H', "Released from hold", "released from hold", func(ids []string) ([]string, error) { return adm.MessagesRelease(ctx, ids) }},
	}
	asked := map[byte]bool{}
	counts := map[byte]int{}
	for _, st := range steps {
		op := ops[st.c]
		if !op.all && len(op.ids) == 0 {
			continue
		}
		asked[st.c] = true
		n, err := s.apply(ctx, op, st.event, st.run)
		counts[st.c] = n
		if err != nil {
			return fatal(err)
		}
	}
	// One summary per kind, in Postfix's order; -f's releases count with -H's.
	summary := func(text string, n int) {
		msg := fmt.Sprintf("%s: %s", text, plural(n, "message"))
		fmt.Fprintf(stderr, "postsuper: %s\n", msg)
		log.Printf("postsuper", "%s", msg)
	}
	if asked['d'] {
		summary("Deleted", counts['d'])
	}
	if asked['e'] || asked['f'] {
		summary("Force-expired", counts['e']+counts['f'])
	}
	if asked['r'] {
		summary("Requeued", counts['r'])
	}
	if asked['h'] {
		summary("Placed on hold", counts['h'])
	}
	if asked['f'] || asked['H'] {
		summary("Released from hold", counts['H']+released)
	}
	return 0
}

// super carries what one postsuper run needs to select messages and report them.
type super struct {
	e      *queueEnv
	queues []string // named on the command line; empty: each operation's defaults
	stderr io.Writer
	log    *maillog.Logger
}

func (s *super) wanted(op *superOp) store.ScanParams {
	qs := s.queues
	if len(qs) == 0 {
		qs = op.defaults
	}
	return store.ScanParams{Queues: qs}
}

// apply runs one operation on its explicit IDs (those in the wanted queues) and, for ALL, on every
// message of those queues, in batches. It returns how many messages changed.
func (s *super) apply(ctx context.Context, op *superOp, event string, run func([]string) ([]string, error)) (int, error) {
	p := s.wanted(op)
	n := 0
	if len(op.ids) > 0 {
		var ids []string
		for _, id := range op.ids {
			m, err := s.e.st.MessageGet(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue // as postsuper: a missing ID is silently not counted
			}
			if err != nil {
				return n, err
			}
			if p.Wanted(store.QueueOf(m.Recipients, p.ScanNow())) {
				ids = append(ids, id)
			}
		}
		got, err := run(ids)
		n += len(got)
		s.report(got, op, event)
		if err != nil {
			return n, err
		}
	}
	if op.all {
		var ids []string
		err := s.e.admin.MessagesScan(ctx, p, func(m *store.QueuedMessage) error {
			ids = append(ids, m.QueueID)
			return nil
		})
		if err != nil {
			return n, err
		}
		for len(ids) > 0 {
			batch := ids[:min(len(ids), 1000)]
			ids = ids[len(batch):]
			got, err := run(batch)
			n += len(got)
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// report logs "ID: event" for each message changed by explicit ID (Postfix is silent per message for ALL).
func (s *super) report(ids []string, op *superOp, event string) {
	if len(op.ids) == 0 {
		return
	}
	for _, id := range ids {
		if !slices.Contains(op.ids, id) {
			continue
		}
		fmt.Fprintf(s.stderr, "postsuper: %s: %s\n", id, event)
		s.log.Printf("postsuper", "%s: %s", id, event)
	}
}
