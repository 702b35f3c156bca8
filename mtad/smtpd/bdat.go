package smtpd

import (
	"bufio"
	"context"
	"io"
	"strconv"
	"strings"
	"time"

	"sqlmta/mtad/rewrite"
	"sqlmta/mtad/spool"
)

// bdatState is a message arriving in BDAT chunks (RFC 3030).
type bdatState struct {
	buf       *spool.Buffer
	size      int64 // bytes stored, every line end as CRLF
	tooBig    bool
	writeErr  error
	atStart   bool // the stored content ends at a line boundary
	pendingCR bool // the last chunk ended in '\r' that may be half of CRLF
}

func (b *bdatState) close() {
	if b != nil && b.buf != nil {
		b.buf.Close()
	}
}

// cmdBdat is Postfix's bdat_cmd: a malformed BDAT ends the session (the
// chunk's length is unknown, so the input cannot be resynchronized);
// otherwise the chunk is always read, and discarded when the command fails.
func (s *session) cmdBdat(args string) (bool, error) {
	f := strings.Fields(args)
	last := len(f) == 2 && strings.EqualFold(f[1], "LAST")
	var count int64
	var err error
	if len(f) >= 1 {
		count, err = strconv.ParseInt(f[0], 10, 64)
	}
	if len(f) < 1 || len(f) > 2 || (len(f) == 2 && !last) || err != nil || count < 0 || !allDigits(f[0]) {
		s.reply("521 5.5.4 Syntax: BDAT count [LAST]")
		return false, errHangup
	}
	fail := func(format string, a ...any) (bool, error) {
		if err := s.discardChunk(count); err != nil {
			return false, err
		}
		s.reply(format, a...)
		return false, nil
	}
	if len(s.rcpts) == 0 {
		if !s.inTx {
			return fail("503 5.5.1 Error: need RCPT command")
		}
		s.fail(0)
		return fail("554 5.5.1 Error: no valid recipients")
	}
	if limit := s.cfg.MessageSizeLimit; limit > 0 && count > limit {
		s.resetTx()
		return fail("552 5.3.4 Chunk exceeds message size limit")
	}
	if s.bdat == nil {
		if rerr := s.checkData(false); rerr != nil {
			if err := s.discardChunk(count); err != nil {
				return false, err
			}
			return s.restrictionReply(rerr)
		}
		s.bdat = &bdatState{buf: spool.New(s.cfg.SpoolMemory, s.cfg.SpoolDir), atStart: true}
	}
	s.mu.Lock()
	s.busy = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.busy = false
		s.mu.Unlock()
	}()
	b := s.bdat
	if err := s.readChunk(b, count); err != nil {
		return false, err
	}
	if b.tooBig {
		s.logf("warning: %s: queue file size limit exceeded", s.queueIDOr())
		s.resetTx()
		s.reply("552 5.3.4 Error: message file too big")
		return false, nil
	}
	if !last {
		if b.writeErr != nil {
			s.logf("warning: %s: spool write error: %v", s.queueIDOr(), b.writeErr)
			s.resetTx()
			s.reply("451 4.3.0 Error: queue file write error")
			return false, nil
		}
		s.reply("250 2.0.0 Ok: %d bytes", count) // this chunk's; the last reply gives the total
		return true, nil
	}
	// The message ends with a line end, as cleanup would add one.
	if b.pendingCR {
		b.pendingCR = false
		b.write(s.cfg.MessageSizeLimit, []byte("\r"))
	}
	if !b.atStart {
		b.write(s.cfg.MessageSizeLimit, []byte("\r\n"))
	}
	size := b.size
	return s.finishMessage(b.buf, b.tooBig, b.writeErr, func() string {
		return "250 2.0.0 Ok: " + strconv.FormatInt(size, 10) + " bytes queued as " + s.queueID
	})
}

// write stores p, counting it against limit (0 = none).
func (b *bdatState) write(limit int64, p []byte) {
	if b.tooBig || b.writeErr != nil || len(p) == 0 {
		return
	}
	if limit > 0 && b.size+int64(len(p)) > limit {
		b.tooBig = true
		return
	}
	b.size += int64(len(p))
	if _, err := b.buf.Write(p); err != nil {
		b.writeErr = err
	}
	b.atStart = p[len(p)-1] == '\n'
}

// readChunk reads exactly count bytes, storing them with every line end
// (CRLF or a bare LF) as CRLF. Nothing is dot-unstuffed: BDAT has no dot.
func (s *session) readChunk(b *bdatState, count int64) error {
	limit := s.cfg.MessageSizeLimit
	r := bufio.NewReaderSize(io.LimitReader(s.br, count), 64<<10)
	var read int64
	for {
		s.conn.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
		chunk, err := r.ReadSlice('\n')
		read += int64(len(chunk))
		if b.pendingCR {
			b.pendingCR = false
			if len(chunk) > 0 && chunk[0] == '\n' {
				b.write(limit, []byte("\r\n"))
				chunk = chunk[1:]
			} else {
				b.write(limit, []byte("\r"))
			}
		}
		if len(chunk) > 0 && chunk[len(chunk)-1] == '\n' {
			b.write(limit, trimCR(chunk[:len(chunk)-1]))
			b.write(limit, []byte("\r\n"))
		} else {
			if n := len(chunk); n > 0 && chunk[n-1] == '\r' {
				chunk = chunk[:n-1]
				b.pendingCR = true
			}
			b.write(limit, chunk)
		}
		switch {
		case err == bufio.ErrBufferFull || err == nil:
			continue
		case err == io.EOF && read == count:
			return nil
		case err == io.EOF:
			return io.ErrUnexpectedEOF
		default:
			return err
		}
	}
}

// discardChunk reads and drops a chunk the command refused.
func (s *session) discardChunk(count int64) error {
	s.conn.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
	n, err := io.CopyN(io.Discard, s.br, count)
	if err == io.EOF && n < count {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// cmdEtrn is Postfix's etrn_cmd: replies without enhanced status codes, as
// RFC 1985 has them.
func (s *session) cmdEtrn(args string) (bool, error) {
	if s.cfg.HeloRequired && s.helo == "" {
		s.fail(errPolicy)
		s.reply("503 Error: send HELO/EHLO first")
		return false, nil
	}
	if s.inTx {
		s.reply("503 Error: MAIL transaction in progress")
		return false, nil
	}
	f := strings.Fields(args)
	if len(f) != 1 {
		s.reply("500 Syntax: ETRN domain")
		return false, nil
	}
	domain := f[0]
	if domain[0] == '@' || domain[0] == '#' {
		domain = domain[1:]
	}
	if !rewrite.ValidHostname(domain) {
		s.reply("501 Error: invalid parameter syntax")
		return false, nil
	}
	if rerr := s.checkEtrn(domain); rerr != nil {
		return s.restrictionReply(rerr)
	}
	// A refused or failed flush is no client error of any class.
	s.fail(0)
	if s.cfg.Etrn == nil {
		s.reply("458 Unable to queue messages")
		return false, nil
	}
	allowed, err := s.cfg.Etrn(context.Background(), domain)
	switch {
	case err != nil:
		s.logf("warning: ETRN %s: %v", domain, err)
		s.reply("458 Unable to queue messages")
		return false, nil
	case !allowed:
		s.reply("459 <%s>: service unavailable", f[0])
		return false, nil
	}
	s.reply("250 Queuing started")
	return true, nil
}

// cmdXclient answers XCLIENT and XFORWARD from clients not in
// smtpd_authorized_xclient_hosts/xforward_hosts (empty by default).
func (s *session) cmdXclient(string) (bool, error) {
	s.fail(errPolicy)
	s.reply("550 5.7.0 Error: insufficient authorization")
	return false, nil
}
