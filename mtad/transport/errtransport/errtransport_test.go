package errtransport

import (
	"context"
	"testing"

	"sqlmta/mtad/transport"
)

func TestSplitDSN(t *testing.T) {
	for _, c := range []struct{ in, dsn, text string }{
		{"5.1.6 User has moved to x@y", "5.1.6", "User has moved to x@y"},
		{"User unknown in virtual alias table", "5.0.0", "User unknown in virtual alias table"},
		{"4.7.1", "4.7.1", ""},
		{"3.1.1 not a class", "5.0.0", "3.1.1 not a class"},
		{"5.1234.1 too long", "5.0.0", "5.1234.1 too long"},
		{"5.1.x bad", "5.0.0", "5.1.x bad"},
		{"  5.2.2   padded  ", "5.2.2", "padded"},
	} {
		dsn, text := SplitDSN("5.0.0", c.in)
		if dsn != c.dsn || text != c.text {
			t.Errorf("SplitDSN(%q) = %q, %q; want %q, %q", c.in, dsn, text, c.dsn, c.text)
		}
	}
}

func TestTransports(t *testing.T) {
	d := &transport.Delivery{QueueID: "Q1", Recipients: []transport.Recipient{{ID: 7, Address: "a@x"}, {ID: 9, Address: "b@x"}}}
	for _, c := range []struct {
		name    string
		tr      *Transport
		nexthop string
		status  transport.Status
		dsn     string
		text    string
	}{
		{"error", Error(), "Address is undeliverable", transport.Bounced, "5.0.0", "Address is undeliverable"},
		{"error with code", Error(), "5.1.1 no such user", transport.Bounced, "5.1.1", "no such user"},
		{"retry", Retry(), "4.3.0 address resolver failure", transport.Deferred, "4.3.0", "address resolver failure"},
		{"retry default", Retry(), "try later", transport.Deferred, "4.0.0", "try later"},
		{"discard", Discard(), "example.com", transport.Sent, "2.0.0", "example.com"},
	} {
		d.Nexthop = c.nexthop
		rs := c.tr.Deliver(context.Background(), d)
		if len(rs) != 2 {
			t.Fatalf("%s: %d results", c.name, len(rs))
		}
		for i, r := range rs {
			if r.RecipientID != d.Recipients[i].ID || r.Status != c.status || r.DSN != c.dsn || r.Text != c.text || r.Relay != "none" {
				t.Errorf("%s: result %d = %+v, want status %v dsn %s text %q relay none", c.name, i, r, c.status, c.dsn, c.text)
			}
		}
	}
}
