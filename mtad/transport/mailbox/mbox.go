package mailbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Locks says how an mbox is locked (mailbox_delivery_lock,
// virtual_mailbox_lock) and how long to try (deliver_lock_attempts,
// deliver_lock_delay, stale_lock_time).
type Locks struct {
	Fcntl, Flock, Dotlock bool
	Attempts              int           // default 20
	Delay                 time.Duration // default 1s
	Stale                 time.Duration // a dot-lock older than this is removed; default 500s
}

// ParseLocks reads a lock list such as "fcntl, dotlock".
func ParseLocks(spec string) (Locks, error) {
	var l Locks
	for _, w := range strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		switch strings.ToLower(w) {
		case "fcntl":
			l.Fcntl = true
		case "flock":
			l.Flock = true
		case "dotlock":
			l.Dotlock = true
		default:
			return l, fmt.Errorf("unknown mailbox lock method %q", w)
		}
	}
	return l, nil
}

func (l Locks) attempts() int {
	if l.Attempts <= 0 {
		return 20
	}
	return l.Attempts
}

func (l Locks) delay() time.Duration {
	if l.Delay <= 0 {
		return time.Second
	}
	return l.Delay
}

// Mbox is one mbox file to append to.
type Mbox struct {
	Path string
	// UID and GID own a file that delivery creates (when Chown is set:
	// mtad runs as root and delivers for a user).
	UID, GID int
	Chown    bool
	Limit    int64 // mailbox_size_limit; 0: none
	Locks    Locks
	// DotlockMayFail lets delivery go on when the dot-lock cannot be made
	// for lack of permission, as Postfix allows for /file deliveries.
	DotlockMayFail bool
}

// Append adds one message to the mbox: it takes the locks, writes through
// write, syncs, and on any failure truncates the file back to its old size
// so that no half message stays behind. Errors are *Error with Postfix's
// wording minus the "cannot update mailbox" prefix the caller adds.
func (m *Mbox) Append(ctx context.Context, write func(io.Writer) error) error {
	if m.Locks.Dotlock {
		unlock, err := m.dotlock(ctx)
		if err != nil {
			return err
		}
		defer unlock()
	}
	f, err := m.open()
	if err != nil {
		return err
	}
	defer f.Close()
	if m.Locks.Fcntl || m.Locks.Flock {
		if err := m.lockFile(ctx, f); err != nil {
			return err
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return &Error{DSN: "4.2.0", Text: fmt.Sprintf("cannot stat %s: %s", m.Path, ErrnoText(err))}
	}
	size := fi.Size()
	limit := int64(-1)
	if m.Limit > 0 {
		limit = max(m.Limit-size, 0)
	}
	werr := write(&limitWriter{w: f, n: limit})
	if werr == nil {
		if err := f.Sync(); err != nil {
			werr = err
		}
	}
	if werr != nil {
		// Never leave half a message for the reader to parse as mail.
		if err := f.Truncate(size); err != nil {
			werr = errors.Join(werr, err)
		}
		var re *ReadError
		if errors.As(werr, &re) {
			return &Error{DSN: "4.3.0", Text: re.Error()}
		}
		return &Error{DSN: DSNFor(werr, "5.2.0"), Text: "error writing message: " + ErrnoText(werr)}
	}
	return nil
}

// open opens the mbox for appending, creating it for its owner when it does
// not exist. A symlink, a non-regular file or one with several links is
// refused, as Postfix's safe_open() does.
func (m *Mbox) open() (*os.File, error) {
	fail := func(dsn, format string, args ...any) (*os.File, error) {
		return nil, &Error{DSN: dsn, Text: fmt.Sprintf(format, args...)}
	}
	f, err := os.OpenFile(m.Path, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.OpenFile(m.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err == nil && m.Chown {
			if cerr := f.Chown(m.UID, m.GID); cerr != nil {
				f.Close()
				os.Remove(m.Path)
				return fail("4.2.0", "cannot change ownership of %s: %s", m.Path, ErrnoText(cerr))
			}
		}
		if errors.Is(err, os.ErrExist) { // created meanwhile by another delivery
			f, err = os.OpenFile(m.Path, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0)
		}
	}
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return fail("5.2.0", "cannot open file %s: file is a symbolic link", m.Path)
		}
		return fail(DSNFor(err, "5.2.0"), "cannot open file %s: %s", m.Path, ErrnoText(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fail("4.2.0", "cannot stat %s: %s", m.Path, ErrnoText(err))
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		f.Close()
		return fail("5.2.0", "destination %s is not a regular file", m.Path)
	case st != nil && st.Nlink > 1:
		f.Close()
		return fail("5.2.0", "destination %s has too many hard links", m.Path)
	}
	return f, nil
}

// lockFile takes an exclusive lock on f, trying Attempts times Delay apart.
// fcntl uses open-file-description locks: they conflict with classic POSIX
// locks held by other programs (mail readers, Postfix) and, unlike those,
// also between two deliveries inside this one process.
func (m *Mbox) lockFile(ctx context.Context, f *os.File) error {
	try := func() error {
		if m.Locks.Fcntl {
			lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
			if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
				return err
			}
		}
		if m.Locks.Flock {
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
				if m.Locks.Fcntl {
					lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: io.SeekStart}
					_ = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
				}
				return err
			}
		}
		return nil
	}
	var err error
	for i := 0; i < m.Locks.attempts(); i++ {
		if err = try(); err == nil {
			return nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EWOULDBLOCK) {
			break
		}
		if i+1 < m.Locks.attempts() && sleep(ctx, m.Locks.delay()) != nil {
			break
		}
	}
	return &Error{DSN: "4.2.0", Text: fmt.Sprintf("unable to lock for exclusive access: %s", ErrnoText(err))}
}

// dotlock creates path.lock, removing one older than Stale, and returns the
// function that removes it.
func (m *Mbox) dotlock(ctx context.Context) (func(), error) {
	lock := m.Path + ".lock"
	stale := m.Locks.Stale
	if stale <= 0 {
		stale = 500 * time.Second
	}
	var err error
	for i := 0; i < m.Locks.attempts(); i++ {
		var f *os.File
		f, err = os.OpenFile(lock, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err == nil {
			f.Close()
			return func() { os.Remove(lock) }, nil
		}
		if !errors.Is(err, os.ErrExist) {
			if m.DotlockMayFail && (errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS)) {
				return func() {}, nil
			}
			return nil, &Error{DSN: DSNFor(err, "4.2.0"), Text: fmt.Sprintf("unable to create lock file %s: %s", lock, ErrnoText(err))}
		}
		if fi, serr := os.Stat(lock); serr == nil && time.Since(fi.ModTime()) > stale {
			os.Remove(lock) // left by a crashed delivery
			continue
		}
		if i+1 < m.Locks.attempts() && sleep(ctx, m.Locks.delay()) != nil {
			break
		}
	}
	return nil, &Error{DSN: "4.2.0", Text: fmt.Sprintf("unable to lock for exclusive access: %s: %s", lock, ErrnoText(err))}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
