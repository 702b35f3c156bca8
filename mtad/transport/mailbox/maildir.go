package mailbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// Maildir writes messages into Maildirs (cr.yp.to/proto/maildir.html): a
// file in tmp/, synced, linked into new/, so a reader never sees half a
// message and a crash leaves at worst a stray file in tmp/. It is safe for
// concurrent use.
type Maildir struct {
	host  string
	count atomic.Uint64
}

// NewMaildir returns a writer whose file names end in hostname (default
// os.Hostname()).
func NewMaildir(hostname string) *Maildir {
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	if hostname == "" {
		hostname = "localhost"
	}
	// The spec's escapes for characters that would break the name.
	hostname = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(hostname)
	return &Maildir{host: hostname}
}

// Target is one Maildir and the owner of what delivery creates there.
type Target struct {
	Dir      string
	UID, GID int
	Chown    bool  // give new directories and the file to UID/GID
	Limit    int64 // largest message file; 0: none
	// Key names this delivery for good (queue ID and recipient ID): it
	// goes into the file name, so that a delivery taken over after a
	// crash can find the copy the dead node wrote. "" for none.
	Key string
	// Retaken asks to look for a file with Key in new/ and cur/ first,
	// and to write nothing when there is one.
	Retaken bool
}

// DeliveryKey is the Key of queued recipient rcptID of message queueID.
func DeliveryKey(queueID string, rcptID int64) string {
	return fmt.Sprintf("%s_%d", queueID, rcptID)
}

// keyMark is how a key appears in a file name: "_" cannot appear in a
// queue ID, and "." ends the unique part, so the match is exact.
func keyMark(key string) string { return "_" + key + "." }

// delivered reports whether a file named with key is in dir's new/ or cur/
// (where a mail reader may have moved it). It reads both directories, so
// it is only done for retaken deliveries.
func delivered(dir, key string) (bool, error) {
	mark := keyMark(key)
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return false, err
		}
		for _, e := range ents {
			if strings.Contains(e.Name(), mark) {
				return true, nil
			}
		}
	}
	return false, nil
}

// Deliver writes one message through write into t.Dir, creating the
// directories it needs. Errors are *Error.
func (m *Maildir) Deliver(ctx context.Context, t Target, write func(io.Writer) error) error {
	fail := func(err error, format string, args ...any) error {
		var re *ReadError
		if errors.As(err, &re) {
			return &Error{DSN: "4.3.0", Text: re.Error()}
		}
		return &Error{DSN: DSNFor(err, "4.2.0"), Text: fmt.Sprintf(format, args...) + ": " + ErrnoText(err)}
	}
	tmpDir, newDir, curDir := filepath.Join(t.Dir, "tmp"), filepath.Join(t.Dir, "new"), filepath.Join(t.Dir, "cur")
	for _, p := range []string{tmpDir, newDir, curDir} {
		if err := MkdirAll(p, t.Chown, t.UID, t.GID); err != nil {
			return &Error{DSN: DSNFor(err, "4.2.0"), Text: err.Error()}
		}
	}
	if t.Retaken && t.Key != "" {
		found, err := delivered(t.Dir, t.Key)
		if err != nil {
			return fail(err, "read maildir %s", t.Dir)
		}
		if found {
			return nil
		}
	}
	now := time.Now()
	name := fmt.Sprintf("%d.M%dP%dQ%d.%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(), m.count.Add(1), m.host)
	if t.Key != "" && !strings.ContainsAny(t.Key, "/:.") {
		name = fmt.Sprintf("%d.M%dP%dQ%d%s%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(), m.count.Add(1), keyMark(t.Key), m.host)
	}
	tmpPath := filepath.Join(tmpDir, name)
	f, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fail(err, "create maildir file %s", tmpPath)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmpPath)
		}
	}()
	if t.Chown {
		if err := f.Chown(t.UID, t.GID); err != nil {
			return fail(err, "chown %s", tmpPath)
		}
	}
	limit := int64(-1)
	if t.Limit > 0 {
		limit = t.Limit
	}
	if err := write(&limitWriter{w: f, n: limit}); err != nil {
		return fail(err, "write %s", tmpPath)
	}
	if err := f.Sync(); err != nil {
		return fail(err, "fsync %s", tmpPath)
	}
	if err := f.Close(); err != nil {
		return fail(err, "close %s", tmpPath)
	}
	ok = true
	newPath := filepath.Join(newDir, name)
	if err := os.Link(tmpPath, newPath); err != nil {
		os.Remove(tmpPath)
		return fail(err, "link to %s", newPath)
	}
	_ = os.Remove(tmpPath)
	// The new directory entry must survive a crash before we say "sent".
	if err := syncDir(newDir); err != nil {
		return fail(err, "fsync %s", newDir)
	}
	return nil
}

// MkdirAll creates p and missing parents with mode 0700, giving each one it
// creates to uid/gid when chown is set (Postfix's make_dirs as the user).
func MkdirAll(p string, chown bool, uid, gid int) error {
	if fi, err := os.Stat(p); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("create %s: Not a directory", p)
		}
		return nil
	}
	parent := filepath.Dir(p)
	if parent != p {
		if err := MkdirAll(parent, chown, uid, gid); err != nil {
			return err
		}
	}
	if err := os.Mkdir(p, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil // created concurrently
		}
		return fmt.Errorf("create %s: %s", p, ErrnoText(err))
	}
	if chown {
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %s", p, ErrnoText(err))
		}
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
