package qmgr

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sqlmta/internal/peers"
	"sqlmta/mtad/transport"
	"sqlmta/mtad/transport/mailbox"
	"sqlmta/mtad/transport/virtual"
	"sqlmta/store"
	"strings"
	"testing"
	"time"
)

// TestTakenOverMaildirDeliveredOnce: a node claimed two messages and died,
// one copy already in its Maildir, the other not yet written. Once the
// lease runs out another node takes both over: the first is found in the
// Maildir and not written again, the second is delivered; each mailbox
// holds one copy.
func TestTakenOverMaildirDeliveredOnce(t *testing.T) {
	st := testStore(t)
	base := t.TempDir()
	enqueue(t, st, "K00", "ann@example.org")
	enqueue(t, st, "K01", "bob@example.org")
	claimed, err := st.RecipientsClaim(context.Background(), store.ClaimParams{Owner: "dead-node", Limit: 10, Lease: time.Second})
	if err != nil || len(claimed) != 2 {
		t.Fatalf("dead node's claim: %v, %v", claimed, err)
	}
	// The dead node had written K00's copy when it died.
	err = mailbox.NewMaildir("node-a").Deliver(context.Background(), mailbox.Target{
		Dir: filepath.Join(base, "ann", "Maildir") + "/", Key: mailbox.DeliveryKey("K00", claimed[0].ID),
	}, func(w io.Writer) error { _, err := io.WriteString(w, "Subject: t\n\nbody\n"); return err })
	if err != nil {
		t.Fatal(err)
	}

	var log syncBuf
	vt := virtual.New(virtual.Config{Hostname: "node-b", MailboxBase: base, DefaultLayout: true})
	_, stop := startQmgrWith(t, Config{Owner: "node-b", PollInterval: 50 * time.Millisecond}, st, routeTo("virtual"),
		map[string]transport.Transport{"virtual": vt}, &log)
	defer stop()

	gone := func(id string) bool {
		_, err := st.MessageGet(context.Background(), id)
		return errors.Is(err, store.ErrNotFound)
	}
	peers.WaitFor(t, 10*time.Second, func() bool { return gone("K00") && gone("K01") }, "both messages delivered")
	for _, user := range []string{"ann", "bob"} {
		ents, _ := os.ReadDir(filepath.Join(base, user, "Maildir", "new"))
		if len(ents) != 1 {
			t.Errorf("%s's Maildir holds %d messages, want 1", user, len(ents))
		}
	}
	l := log.String()
	for _, want := range []string{
		"warning: K00: 1 recipient(s) taken over from a node whose lease ran out",
		"warning: K01: 1 recipient(s) taken over from a node whose lease ran out",
		"K00: to=<ann@example.org>, relay=virtual",
	} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
}
