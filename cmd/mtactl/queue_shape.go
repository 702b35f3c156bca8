package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"sqlmta/store"
)

// qshapeMain is qshape: the age distribution of the queue by recipient domain (or sender domain, -s), in
// buckets of -t minutes doubling -b times (linear with -l), for the named queues (default incoming and
// active). -p adds parent domains with at least -m subdomains. The layout is qshape's (a Perl script in
// Postfix), column for column.
func qshapeMain(prog, dir string, args []string, stdout, stderr io.Writer) int {
	q := qshape{width: 80, bnum: 10, tick: 5, minsub: 5}
	var bad error
	num := func(arg string, dst *int) {
		n, err := strconv.Atoi(arg)
		if err != nil {
			bad = fmt.Errorf("bad number %q", arg)
		}
		*dst = n
	}
	rest, err := getopt(args, "b:c:lm:n:N:pst:w:", func(c byte, arg string) {
		var n int
		switch c {
		case 'b':
			if num(arg, &n); n > 0 {
				q.bnum = n
			}
		case 'c':
			dir = arg
		case 'l':
			q.linear = true
		case 'm':
			if num(arg, &n); n > 0 {
				q.minsub = n
			}
		case 'p':
			q.parents = true
		case 's':
			q.senders = true
		case 't':
			if num(arg, &n); n > 0 {
				q.tick = n
			}
		case 'w':
			if num(arg, &n); n > 80 {
				q.width = n
			}
		}
	})
	if err == nil {
		err = bad
	}
	queues := rest
	if len(queues) == 0 {
		queues = []string{store.QueueIncoming, store.QueueActive}
	}
	for _, name := range queues {
		if err == nil && !slices.Contains(allQueues, name) {
			err = fmt.Errorf("unknown queue %q (want incoming, active, deferred or hold)", name)
		}
	}
	if err != nil {
		return queueFatal(stderr, prog, err)
	}
	ctx := context.Background()
	e, err := openQueue(ctx, dir)
	if err != nil {
		return queueFatal(stderr, prog, err)
	}
	defer e.Close()
	q.counts, q.sub, q.now = map[string][]int{}, map[string]int{}, time.Now()
	err = e.admin.MessagesScan(ctx, store.ScanParams{Queues: queues}, func(m *store.QueuedMessage) error {
		q.add(m)
		return nil
	})
	if err != nil {
		return queueFatal(stderr, prog, err)
	}
	w := bufio.NewWriter(stdout)
	q.results(w)
	return errExit(w.Flush())
}

func errExit(err error) int {
	if err != nil {
		return 1
	}
	return 0
}

type qshape struct {
	width, bnum, tick, minsub int
	linear, parents, senders  bool

	now    time.Time
	counts map[string][]int // domain → [total, bucket 1 … bnum]
	sub    map[string]int   // parent domain → subdomains seen
}

func (q *qshape) bucket(arrival time.Time) int {
	m := q.now.Sub(arrival).Seconds() / float64(60*q.tick)
	if m < 1 {
		return 1
	}
	b := 2 + int(math.Log(m)/math.Log(2))
	if q.linear {
		b = int(m + 1)
	}
	return min(b, q.bnum)
}

func (q *qshape) inc(d string, b int) {
	c := q.counts[d]
	if c == nil {
		c = make([]int, q.bnum+1)
		q.counts[d] = c
	}
	c[0]++
	c[b]++
}

func (q *qshape) add(m *store.QueuedMessage) {
	b := q.bucket(m.Arrival)
	addrs := []string{m.Sender}
	if !q.senders {
		addrs = addrs[:0]
		for _, r := range m.Recipients {
			addrs = append(addrs, r.Address)
		}
	}
	for _, a := range addrs {
		a = strings.ToLower(a)
		q.inc("TOTAL", b)
		if a == "" {
			a = "MAILER-DAEMON"
		}
		if i := strings.LastIndexByte(a, '@'); i >= 0 {
			a = a[i+1:]
		}
		for strings.Contains(a, "..") {
			a = strings.ReplaceAll(a, "..", ".")
		}
		a = strings.Trim(a, ".")
		// With -p, count the domain and each parent with at least two labels (.example.com).
		isNew := false
		for {
			old := q.counts[a] != nil
			q.inc(a, b)
			if isNew {
				q.sub[a]++
			}
			isNew = !old
			if !q.parents {
				break
			}
			p := strings.TrimPrefix(a, ".")
			i := strings.IndexByte(p, '.')
			if i < 0 || !strings.Contains(p[i+1:], ".") {
				break
			}
			a = "." + p[i+1:]
		}
	}
}

func (q *qshape) results(w *bufio.Writer) {
	var heads []string
	var widths []int
	dw := q.width
	t := 0
	total := q.counts["TOTAL"]
	if total == nil {
		total = make([]int, q.bnum+1)
		q.counts["TOTAL"] = total
	}
	for i := 0; i <= q.bnum; i++ {
		h := "T"
		if i > 0 {
			h = strconv.Itoa(t)
			if i == q.bnum {
				h += "+"
			}
		}
		l := max(len(strconv.Itoa(total[i])), len(h))
		if l > 2 {
			l++
		} else {
			l = 3
		}
		heads = append(heads, h)
		widths = append(widths, l)
		dw -= l
		if i+1 < q.bnum {
			if t != 0 && !q.linear {
				t += t
			} else {
				t += q.tick
			}
		}
	}
	dw = max(dw, 18)
	row := func(d string, cells []string) {
		switch {
		case len(d) > dw && d[0] == '.':
			w.WriteString(".+" + d[len(d)-dw+2:])
		case len(d) > dw:
			w.WriteString("+" + d[len(d)-dw+1:])
		default:
			w.WriteString(strings.Repeat(" ", dw-len(d)) + d)
		}
		for i, c := range cells {
			fmt.Fprintf(w, "%*s", widths[i], c)
		}
		w.WriteString("\n")
	}
	row("", heads)
	domains := make([]string, 0, len(q.counts))
	for d := range q.counts {
		domains = append(domains, d)
	}
	// qshape's order: most addresses first, then shorter names; the name itself breaks the remaining ties.
	slices.SortFunc(domains, func(a, b string) int {
		if c := q.counts[b][0] - q.counts[a][0]; c != 0 {
			return c
		}
		if c := len(a) - len(b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, d := range domains {
		if d[0] == '.' && q.sub[d] < q.minsub {
			continue
		}
		cells := make([]string, len(q.counts[d]))
		for i, n := range q.counts[d] {
			cells[i] = strconv.Itoa(n)
		}
		row(d, cells)
	}
}
