package smtpd

import (
	"net"
	"os"
	"syscall"
	"time"

	"sqlmta/mtad/reply"
)

// slots counts one listener's sessions against ProcessLimit. Its fields
// are guarded by Server.mu.
type slots struct {
	busy   int
	warnAt time.Time // no process limit warning before then
}

// processLimitWarnEvery is how often master(8) repeats its warning that a
// service is at its process limit.
const processLimitWarnEvery = 1000 * time.Second

// waitSlot blocks while the listener has ProcessLimit sessions: like
// Postfix's master, which stops accepting on a service at its maxproc,
// new clients then wait in the listen backlog instead of being answered.
// It takes the slot and returns true, or false once the server is closing.
func (s *Server) waitSlot(sl *slots, ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closing {
		cfg := s.cfg.Load()
		if cfg.ProcessLimit == 0 || sl.busy < cfg.ProcessLimit {
			sl.busy++
			return true
		}
		if now := time.Now(); !now.Before(sl.warnAt) {
			sl.warnAt = now.Add(processLimitWarnEvery)
			name := cfg.ServiceName
			if name == "" {
				name = "smtp"
			}
			cfg.Log.Printf("master", "warning: service \"%s\" (%s) has reached its process limit \"%d\": new clients may experience noticeable delays",
				name, ln.Addr(), cfg.ProcessLimit)
			cfg.Log.Printf("master", "warning: to avoid this condition, increase the process count in master.cf or reduce the service time per client")
		}
		s.slotFree.Wait()
	}
	return false
}

// releaseSlot gives back a slot taken by waitSlot.
func (s *Server) releaseSlot(sl *slots) {
	s.mu.Lock()
	sl.busy--
	s.mu.Unlock()
	s.slotFree.Broadcast()
}

// statfs is fsspace(3): the block size and the blocks available to an
// unprivileged user.
func statfs(dir string) (blockSize, blocksFree uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return uint64(st.Bsize), uint64(st.Bavail), nil
}

// spaceMultiplier is smtpd_space_multf: the queue file system must keep
// this many times message_size_limit free.
const spaceMultiplier = 1.5

// insufficientStorage is smtpd_check_queue's reply.
var insufficientStorage = reply.New(452, "4.3.1", "Insufficient system storage")

// checkQueueSpace is smtpd_check_queue, run for every MAIL FROM: refuse
// the transaction while the spool's file system has queue_minfree bytes
// or less free, or less than 1.5 × message_size_limit. The comparison is
// in whole blocks, as Postfix makes it. A file system that cannot be
// examined does not stop mail (Postfix would exit; the client would see a
// dropped connection instead of a reply). warn logs Postfix's warning; the
// caller calls it after the reject line, in Postfix's order.
func (s *session) checkQueueSpace() (rerr *reply.Error, warn func()) {
	dir := s.cfg.SpoolDir
	if dir == "" {
		dir = os.TempDir()
	}
	bsize, free, err := s.cfg.statfs(dir)
	if err != nil {
		s.srv.warnOnce("statfs "+dir, func() { s.logf("warning: %s: cannot determine free space: %v", dir, err) })
		return nil, nil
	}
	if bsize == 0 {
		return nil, nil
	}
	minfree := uint64(max(s.cfg.QueueMinFree, 0)) / bsize
	limit := uint64(max(s.cfg.MessageSizeLimit, 0)) / bsize
	if minfree >= free || float64(limit) >= float64(free)/spaceMultiplier {
		return insufficientStorage, func() {
			s.logf("warning: not enough free space in mail queue: %d bytes < %g*message size limit", free*bsize, spaceMultiplier)
		}
	}
	return nil, nil
}
