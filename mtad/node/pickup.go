package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"sqlmta/mtad/pickup"
)

// PIDFile is the file, under data_directory, that holds a running mtad's
// pid, locked for as long as it runs (Postfix's pid/master.pid); `postfix
// stop|reload|status` read it.
const PIDFile = "master.pid"

// hostState is what a node keeps on its own host: the pid file and pickup on
// its maildrop.
type hostState struct {
	pid    *os.File
	cancel context.CancelFunc
	done   chan error
}

// startLocal takes the pid file, refusing to start a second mtad on the
// same data_directory, and starts pickup. A maildrop that cannot be set up
// (queue_directory not writable, as for a user's test node) leaves local
// submission off with a warning rather than stopping the node.
func (n *Node) startLocal() error {
	l := &hostState{}
	pid, err := lockPIDFile(filepath.Join(n.cfg.Get("data_directory"), PIDFile))
	if err != nil {
		return err
	}
	l.pid = pid
	n.host = l
	limit, err := n.cfg.Size("message_size_limit")
	if err != nil {
		return err
	}
	group := n.cfg.Get("setgid_group")
	if group == "" {
		group = "postdrop"
	}
	p, err := pickup.New(pickup.Config{
		QueueDir:  n.cfg.Get("queue_directory"),
		Group:     group,
		SizeLimit: limit,
		Bounce:    n.bouncer,
	}, n.cleanup, n.log)
	if err != nil {
		n.log.Printf("pickup", "warning: %v -- local submission (sendmail) is disabled", err)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan error, 1)
	go func() { l.done <- p.Run(ctx) }()
	return nil
}

// stopLocal stops pickup (a message being queued finishes first) and
// removes the pid file.
func (n *Node) stopLocal() {
	l := n.host
	if l == nil {
		return
	}
	if l.cancel != nil {
		l.cancel()
		<-l.done
	}
	if l.pid != nil {
		os.Remove(l.pid.Name())
		l.pid.Close()
	}
}

// lockPIDFile opens path, takes an exclusive lock on it and writes this
// process's pid. The lock, not the file's existence, says mtad runs: a
// crashed mtad's file is stale and taken over.
func lockPIDFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("the mail system is already running (%s is locked)", path)
		}
		return nil, err
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
