package main

import (
	"strings"
	"testing"

	"sqlmta/internal/testdb"
)

// TestUnknownTransportThrottled: transport_maps names a transport that
// master.cf does not define. The first message finds it missing ("mail
// transport unavailable", Postfix's warning about the missing socket); for
// transport_retry_time the next one is deferred by the qmgr without
// looking again. Nothing is lost: both stay queued.
func TestUnknownTransportThrottled(t *testing.T) {
	d := startDaemon(t, testdb.SQLiteURL(t),
		"transport_maps = inline:{ {t.example=nosuch:} }",
		"transport_retry_time = 1h",
		"minimal_backoff_time = 1h",
	)
	first := queueMessage(t, d.addr, "s@sender.example", []string{"a@t.example"}, "Subject: one\r\n\r\nbody")
	d.waitLog(t, `postfix/qmgr\[\d+\]: warning: connect to transport private/nosuch: No such file or directory`,
		first+`: to=<a@t\.example>, relay=none, .*dsn=4\.3\.0, status=deferred \(mail transport unavailable\)`)
	second := queueMessage(t, d.addr, "s@sender.example", []string{"b@t.example"}, "Subject: two\r\n\r\nbody")
	d.waitLog(t, `postfix/qmgr\[\d+\]: `+second+`: to=<b@t\.example>, relay=none, .*dsn=4\.3\.0, status=deferred \(mail transport unavailable\)`)
	if n := strings.Count(d.maillog(), "connect to transport private/nosuch"); n != 1 {
		t.Errorf("%d warnings about the missing transport, want 1: the second message must find it throttled", n)
	}
	for _, id := range []string{first, second} {
		if strings.Contains(d.maillog(), id+": removed") {
			t.Errorf("%s was removed", id)
		}
	}
}
