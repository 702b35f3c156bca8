package sqlq

import (
	"slices"
	"time"

	"sqlmta/store"
)

// AdminPage gathers one page of the admin scan, whose query returns one row per recipient with the
// message's columns repeated (a LEFT JOIN: a message without recipients comes as one row with recipient
// ID 0), ordered by message, then recipient.
type AdminPage struct {
	msgs []*store.QueuedMessage
}

// Add takes one row.
func (p *AdminPage) Add(m *store.QueuedMessage, r store.Recipient) {
	n := len(p.msgs)
	if n == 0 || p.msgs[n-1].QueueID != m.QueueID {
		cp := *m
		cp.Recipients = nil
		p.msgs = append(p.msgs, &cp)
		n++
	}
	if r.ID != 0 {
		p.msgs[n-1].Recipients = append(p.msgs[n-1].Recipients, r)
	}
}

// Emit classifies the page's messages, hands those p wants to fn, and returns the last queue ID read
// (the next page starts after it) and how many messages the page held.
func (pg *AdminPage) Emit(p store.ScanParams, now time.Time, fn func(*store.QueuedMessage) error) (last string, n int, err error) {
	for _, m := range pg.msgs {
		m.Queue = store.QueueOf(m.Recipients, now)
		if !p.Wanted(m.Queue) {
			continue
		}
		if err := fn(m); err != nil {
			return "", 0, err
		}
	}
	if len(pg.msgs) > 0 {
		last = pg.msgs[len(pg.msgs)-1].QueueID
	}
	n = len(pg.msgs)
	pg.msgs = pg.msgs[:0]
	return last, n, nil
}

// SortedUnique sorts ids and drops repeats, so that operations lock rows in one order and count each
// message once.
func SortedUnique(ids []string) []string {
	out := append([]string(nil), ids...)
	slices.Sort(out)
	w := 0
	for i, id := range out {
		if i == 0 || id != out[w-1] {
			out[w] = id
			w++
		}
	}
	return out[:w]
}
