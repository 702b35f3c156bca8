package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sqlmta/config"
	"sqlmta/mtad/node"
)

// postfixMain is the postfix command (a link, or `mtactl postfix`):
// start, start-fg, stop, reload, status, check and flush drive mtad as
// Postfix's postfix(1) drives its master. mtad holds a lock on
// $data_directory/master.pid while it runs; that lock, not the file, says
// whether it runs.
func postfixMain(prog, dir string, args []string, stdout, stderr io.Writer) int {
	rest, err := getopt(args, "c:Dv", func(c byte, arg string) {
		if c == 'c' {
			dir = arg
		}
	})
	if err != nil || len(rest) != 1 {
		fmt.Fprintf(stderr, "%s: fatal: usage: %s [-c config_dir] [-Dv] command\n", prog, prog)
		return 1
	}
	cfg, err := config.Load(dir)
	if err != nil {
		fmt.Fprintf(stderr, "%s: fatal: %v\n", prog, err)
		return 1
	}
	p := &postfixCmd{dir: dir, cfg: cfg, stdout: stdout, stderr: stderr,
		pidFile: filepath.Join(cfg.Get("data_directory"), node.PIDFile), system: "the " + cfg.Get("mail_name") + " mail system"}
	switch rest[0] {
	case "start":
		return p.start()
	case "start-fg":
		return p.startFg()
	case "stop":
		return p.signal(syscall.SIGTERM, "stopping")
	case "reload":
		return p.signal(syscall.SIGHUP, "refreshing")
	case "status":
		if pid := p.running(); pid > 0 {
			p.info("%s is running: PID: %d", p.system, pid)
			return 0
		}
		p.info("%s is not running", p.system)
		return 1
	case "check":
		return p.check()
	case "flush":
		return postqueueMain("postqueue", dir, []string{"-f"}, stdout, stderr)
	}
	fmt.Fprintf(stderr, "%s: fatal: unknown command: '%s'. Usage: %s start|start-fg|stop|reload|status|check|flush\n", prog, rest[0], prog)
	return 1
}

type postfixCmd struct {
	dir            string
	cfg            *config.Config
	pidFile        string
	system         string
	stdout, stderr io.Writer
}

// info and fatal print as postfix-script does.
func (p *postfixCmd) info(format string, args ...any) {
	fmt.Fprintf(p.stderr, "postfix/postfix-script: "+format+"\n", args...)
}

func (p *postfixCmd) fatal(format string, args ...any) int {
	fmt.Fprintf(p.stderr, "postfix/postfix-script: fatal: "+format+"\n", args...)
	return 1
}

// running returns the pid of the mtad that holds the pid file's lock, or 0.
func (p *postfixCmd) running() int {
	f, err := os.Open(p.pidFile)
	if err != nil {
		return 0
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return 0 // nobody holds it: a stale file
	}
	b, _ := io.ReadAll(f)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// mtadPath is the daemon beside this executable.
func mtadPath() (string, error) { return besideExecutable("mtad") }

// besideExecutable is the program name in the directory of this
// executable (a link's target): never one found on $PATH, which could be
// Postfix's.
func besideExecutable(name string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return filepath.Join(filepath.Dir(exe), name), nil
}

// start runs mtad in the background, in its own session, and waits until
// it holds the pid file (it accepts mail) or has exited.
func (p *postfixCmd) start() int {
	if p.running() > 0 {
		return p.fatal("%s is already running", p.system)
	}
	if err := p.cfg.Check(); err != nil {
		return p.fatal("%v", err)
	}
	bin, err := mtadPath()
	if err != nil {
		return p.fatal("%v", err)
	}
	dataDir := p.cfg.Get("data_directory")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return p.fatal("%v", err)
	}
	// Without maillog_file mtad logs to stderr: keep that in a file.
	out, err := os.OpenFile(filepath.Join(dataDir, "mtad.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return p.fatal("%v", err)
	}
	defer out.Close()
	p.info("starting %s", p.system)
	cmd := exec.Command(bin, "-c", p.dir)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return p.fatal("%v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return p.fatal("mtad exited at start (%v); see %s", err, out.Name())
		case <-time.After(50 * time.Millisecond):
		}
		if p.running() == cmd.Process.Pid {
			return 0
		}
	}
	return p.fatal("mtad (pid %d) did not start within two minutes; see %s", cmd.Process.Pid, out.Name())
}

// startFg replaces this process with mtad in the foreground (for
// supervisors such as systemd or a container's init).
func (p *postfixCmd) startFg() int {
	if p.running() > 0 {
		return p.fatal("%s is already running", p.system)
	}
	bin, err := mtadPath()
	if err != nil {
		return p.fatal("%v", err)
	}
	err = syscall.Exec(bin, []string{"mtad", "-c", p.dir}, os.Environ())
	return p.fatal("exec %s: %v", bin, err)
}

// signal sends sig to the running mtad; for SIGTERM it waits until mtad
// has let go of the pid file.
func (p *postfixCmd) signal(sig syscall.Signal, doing string) int {
	pid := p.running()
	if pid <= 0 {
		return p.fatal("%s is not running", p.system)
	}
	p.info("%s %s", doing, p.system)
	if err := syscall.Kill(pid, sig); err != nil {
		return p.fatal("kill %d: %v", pid, err)
	}
	if sig != syscall.SIGTERM {
		return 0
	}
	deadline := time.Now().Add(90 * time.Second)
	for p.running() == pid {
		if time.Now().After(deadline) {
			return p.fatal("mtad (pid %d) is still running", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0
}

// check is `postfix check`: main.cf, every lookup table (mtactl map
// check) and the permissions local submission relies on.
func (p *postfixCmd) check() int {
	status := 0
	if err := p.cfg.Check(); err != nil {
		p.info("warning: %v", err)
		status = 1
	}
	for _, w := range p.cfg.Warnings() {
		p.info("warning: %s", w)
	}
	if code := mapCheck(p.dir, p.stdout, p.stderr); code != 0 {
		status = code
	}
	md := filepath.Join(p.cfg.Get("queue_directory"), "maildrop")
	if fi, err := os.Lstat(md); err == nil {
		if fi.Mode()&(os.ModePerm|os.ModeSticky) != 0o730|os.ModeSticky {
			p.info("warning: %s: mode %v, want drwx-wx--T (1730)", md, fi.Mode())
			status = 1
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		p.info("warning: %v", err)
	}
	if bin, err := mtadPath(); err == nil {
		pd := filepath.Join(filepath.Dir(bin), "postdrop")
		if fi, err := os.Stat(pd); err != nil {
			p.info("warning: %v", err)
		} else if os.Getuid() == 0 && fi.Mode()&os.ModeSetgid == 0 {
			p.info("warning: %s is not set-gid: only users in its group can submit mail", pd)
		}
	}
	return status
}
