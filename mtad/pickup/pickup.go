// Package pickup drains the maildrop directory into the queue, as Postfix's
// pickup(8): each complete file that the set-gid postdrop helper wrote
// (format in package maildrop) is checked, logged with the uid that owns
// it (`ID: uid=1000 from=<user>`), handed to cleanup, and removed only
// after the queue commit. It wakes on a trigger FIFO that postdrop writes
// to, and polls once a second besides. Every mtad node drains its own
// maildrop.
package pickup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sqlmta/mtad/envelope"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/pickup/maildrop"
	"sqlmta/mtad/queueid"
	"sqlmta/mtad/reply"
)

// Submitter is cleanup's entry point (cleanup.Cleanup implements it).
type Submitter interface {
	Submit(ctx context.Context, env *envelope.Envelope, content io.Reader) error
}

// Bouncer returns mail that cleanup refuses for good to its sender
// (bounce.Bouncer implements it).
type Bouncer interface {
	Rejected(ctx context.Context, env *envelope.Envelope, content io.Reader, dsn, text string) error
}

// Config says where the maildrop is and how pickup treats it.
type Config struct {
	QueueDir string // queue_directory: maildrop/ and public/pickup live there
	// Group owns maildrop/ and public/ (Postfix's setgid_group); when the
	// group does not exist they keep the group of the process.
	Group string
	// SizeLimit is message_size_limit (0: none); larger content is refused.
	SizeLimit int64
	Interval  time.Duration // poll interval; 0 means one second
	// StaleAfter is how old an incomplete file (its writer died) must be
	// before pickup removes it; 0 means a day.
	StaleAfter time.Duration
	// Bounce receives the mail cleanup refuses for good (header_checks
	// REJECT, too big), as Postfix's pickup asks cleanup to bounce it
	// (CLEANUP_FLAG_BOUNCE): a local sender has no SMTP reply to read.
	// Nil: such mail is logged and dropped.
	Bounce Bouncer
}

// Pickup is the maildrop reader of one node.
type Pickup struct {
	cfg     Config
	dir     string // the maildrop directory
	fifo    *os.File
	submit  Submitter
	log     *maillog.Logger
	backoff time.Duration // after a temporary failure
	retryAt time.Time
}

// New creates the maildrop directory (mode 1730, group cfg.Group) and the
// trigger FIFO if they are missing, and returns a Pickup for them.
func New(cfg Config, sub Submitter, log *maillog.Logger) (*Pickup, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 24 * time.Hour
	}
	if cfg.QueueDir == "" {
		return nil, errors.New("queue_directory is empty")
	}
	gid := -1
	if cfg.Group != "" {
		if g, err := user.LookupGroup(cfg.Group); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	// queue_directory is searchable by all, like Postfix's: local users
	// reach public/ and maildrop/ through it, whose modes keep them out.
	if err := os.MkdirAll(cfg.QueueDir, 0o755); err != nil {
		return nil, err
	}
	p := &Pickup{cfg: cfg, dir: filepath.Join(cfg.QueueDir, "maildrop"), submit: sub, log: log}
	// Writable by the group (postdrop) but not readable: a user cannot
	// list, read or remove another user's submissions; sticky, so even
	// the group can remove only files it owns.
	if err := ensureDir(p.dir, 0o730|os.ModeSticky, gid); err != nil {
		return nil, err
	}
	public := filepath.Join(cfg.QueueDir, "public")
	if err := ensureDir(public, 0o710, gid); err != nil {
		return nil, err
	}
	fifo := filepath.Join(public, "pickup")
	if err := syscall.Mkfifo(fifo, 0o622); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("mkfifo %s: %w", fifo, err)
	}
	// O_RDWR: the open does not wait for a writer, and the FIFO never
	// reads end-of-file when postdrop closes it.
	f, err := os.OpenFile(fifo, os.O_RDWR|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		f.Close()
		return nil, fmt.Errorf("%s is not a FIFO", fifo)
	}
	p.fifo = f
	return p, nil
}

// ensureDir makes dir with mode and group, or sets them on an existing
// directory (not a symbolic link) that this process owns.
func ensureDir(dir string, mode os.FileMode, gid int) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if gid >= 0 {
		// Not allowed unless root (or a member): then only this process's
		// user can submit, which is what an unprivileged test node wants.
		_ = os.Lchown(dir, -1, gid)
	}
	return os.Chmod(dir, mode)
}

// Dir is the maildrop directory.
func (p *Pickup) Dir() string { return p.dir }

// Run drains the maildrop until ctx ends, at each trigger and every
// Interval. It closes the trigger FIFO when it returns.
func (p *Pickup) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := p.fifo.Read(buf); err != nil {
				return // closed at stop
			}
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}()
	defer p.fifo.Close()
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		p.Scan(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-t.C:
		}
	}
}

// Scan makes one pass over the maildrop and returns how many messages it
// queued. A temporary failure (the database is down) stops the pass and
// backs off, doubling up to a minute.
func (p *Pickup) Scan(ctx context.Context) int {
	if time.Now().Before(p.retryAt) {
		return 0
	}
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		p.log.Printf("pickup", "warning: scan %s: %v", p.dir, err)
		return 0
	}
	n := 0
	for _, e := range entries {
		if ctx.Err() != nil {
			break
		}
		queued, err := p.file(ctx, e.Name())
		if err != nil {
			p.log.Printf("pickup", "warning: maildrop/%s: %v", e.Name(), err)
			p.backoff = min(max(2*p.backoff, time.Second), time.Minute)
			p.retryAt = time.Now().Add(p.backoff)
			break
		}
		if queued {
			n++
			p.backoff = 0
		}
	}
	return n
}

// file picks up one maildrop file. It returns a non-nil error only for a
// temporary failure, when the file stays for a later pass.
func (p *Pickup) file(ctx context.Context, name string) (bool, error) {
	path := filepath.Join(p.dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil // another pass took it
		}
		if errors.Is(err, syscall.ELOOP) {
			p.remove(path, name, "a symbolic link")
			return false, nil
		}
		return false, err
	}
	defer f.Close()
	// Only one reader per file, in case two nodes share a maildrop.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false, nil
	}
	// The file's owner is the submitting user: checked on the open file,
	// so that it cannot change between the check and the read.
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false, err
	}
	if st.Nlink == 0 {
		return false, nil // already picked up and removed
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		p.remove(path, name, "not a regular file")
		return false, nil
	}
	if st.Mode&0o100 == 0 {
		// postdrop is still writing it, or died doing so.
		if time.Since(time.Unix(st.Mtim.Sec, 0)) > p.cfg.StaleAfter {
			p.remove(path, name, "an incomplete file")
		}
		return false, nil
	}
	uid := int(st.Uid)
	br := bufio.NewReaderSize(f, 64*1024)
	md, err := maildrop.Read(br, true)
	if err != nil {
		p.log.Printf("pickup", "warning: maildrop/%s: uid=%d: %v", name, uid, err)
		p.remove(path, name, "")
		return false, nil
	}
	if md.UID != uid {
		// Only postdrop writes U, with the caller's uid, so this is a file
		// someone placed by other means: the owner is what counts.
		p.log.Printf("pickup", "warning: maildrop/%s: file owner uid=%d, envelope claims uid=%d: using the owner", name, uid, md.UID)
	}
	env := envelopeOf(md)
	env.UID = strconv.Itoa(uid)
	p.log.Printf("pickup", "%s: uid=%d from=<%s>", env.QueueID, uid, md.Sender)
	// The content is what follows the envelope in the file.
	off, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return false, err
	}
	start := off - int64(br.Buffered())
	if p.cfg.SizeLimit > 0 && st.Size-start > p.cfg.SizeLimit {
		err = reply.New(552, "5.3.4", "message file too big") // cleanup_stat_detail's wording
	}
	if err == nil {
		err = p.submit.Submit(ctx, env, p.content(br, md))
	}
	if err != nil {
		r := reply.As(err)
		if r == nil || r.Temporary() {
			return false, fmt.Errorf("uid=%d from=<%s>: %v", uid, md.Sender, err)
		}
		if p.cfg.Bounce == nil {
			p.log.Printf("pickup", "warning: %s: uid=%d from=<%s>: rejected: %s", env.QueueID, uid, md.Sender, r)
		} else if err := p.bounce(ctx, f, start, env, md, r); err != nil {
			// The file stays: cleanup sees it again at the next pass, as
			// Postfix keeps a maildrop file whose bounce failed.
			return false, fmt.Errorf("uid=%d from=<%s>: %v", uid, md.Sender, err)
		}
		p.remove(path, name, "")
		return false, nil
	}
	if err := os.Remove(path); err != nil {
		p.log.Printf("pickup", "warning: remove maildrop/%s: %v", name, err)
	}
	return true, nil
}

// bounce returns mail that cleanup refused with r to its sender: the
// status=bounced lines cleanup_bounce logs for each recipient, then the
// notice, built from the file's content read again from start.
func (p *Pickup) bounce(ctx context.Context, f *os.File, start int64, env *envelope.Envelope, md *maildrop.Envelope, r *reply.Error) error {
	dsn := r.Enhanced
	if dsn == "" {
		dsn = "5.0.0"
	}
	text := r.Text
	if text == "" {
		text = "message content rejected"
	}
	arrival := env.Arrival
	if arrival.IsZero() {
		arrival = time.Now()
	}
	delay, delays := maillog.Delays(time.Since(arrival), time.Since(arrival), 0, 0, 0)
	for _, rc := range env.Recipients {
		p.log.Printf("cleanup", "%s: to=<%s>, relay=none, delay=%s, delays=%s, dsn=%s, status=bounced (%s)",
			env.QueueID, rc.Address, delay, delays, dsn, text)
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return err
	}
	return p.cfg.Bounce.Rejected(ctx, env, p.content(bufio.NewReaderSize(f, 64*1024), md), dsn, text)
}

// remove deletes a file that can never be queued.
func (p *Pickup) remove(path, name, why string) {
	if why != "" {
		p.log.Printf("pickup", "warning: maildrop/%s: %s: removed", name, why)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		p.log.Printf("pickup", "warning: remove maildrop/%s: %v", name, err)
	}
}

// envelopeOf turns a maildrop envelope into cleanup's: command-line
// recipients, then those sendmail -t extracted, each with -N's NOTIFY.
func envelopeOf(md *maildrop.Envelope) *envelope.Envelope {
	env := &envelope.Envelope{
		QueueID:  queueid.New(),
		Sender:   md.Sender,
		Arrival:  md.Arrival,
		BodyType: md.BodyType,
		EnvID:    md.EnvID,
		Ret:      md.Ret,
	}
	for _, r := range append(append([]string{}, md.Recipients...), md.Extracted...) {
		env.Recipients = append(env.Recipients, envelope.Recipient{Address: r, Notify: md.Notify})
	}
	return env
}

// content is the message as cleanup reads it: CRLF line ends, and a From:
// header with sendmail -F's full name when the message has none (Postfix's
// cleanup adds it from the full name record).
func (p *Pickup) content(br *bufio.Reader, md *maildrop.Envelope) io.Reader {
	var prefix string
	if md.FullName != "" && !hasFrom(br) {
		prefix = "From: " + phrase(md.FullName) + " <" + md.Sender + ">\n"
	}
	return &crlfReader{r: bufio.NewReader(io.MultiReader(strings.NewReader(prefix), br))}
}

// hasFrom peeks at the header block for a From: header.
func hasFrom(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Size())
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		line := strings.TrimRight(string(b[:i]), "\r")
		if line == "" {
			return false
		}
		if len(line) > 5 && strings.EqualFold(line[:5], "from:") {
			return true
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return false
}

// phrase quotes a display name unless it is all atoms and spaces.
func phrase(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || strings.IndexByte(`()<>@,;:\".[]`, c) >= 0 {
			return strconv.Quote(s)
		}
	}
	return s
}

// crlfReader turns LF line ends into CRLF (the queue holds SMTP's form)
// and ends an unterminated last line.
type crlfReader struct {
	r       *bufio.Reader
	pending []byte
}

func (c *crlfReader) Read(b []byte) (int, error) {
	for len(c.pending) == 0 {
		line, err := c.r.ReadSlice('\n')
		if len(line) > 0 {
			if line[len(line)-1] == '\n' {
				if len(line) < 2 || line[len(line)-2] != '\r' {
					line = append(line[:len(line)-1:len(line)-1], '\r', '\n')
				}
			} else if err != bufio.ErrBufferFull {
				line = append(line[:len(line):len(line)], '\r', '\n')
			}
			c.pending = append(c.pending[:0], line...)
			break
		}
		if err != nil {
			return 0, err
		}
	}
	n := copy(b, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}
