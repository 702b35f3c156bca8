package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Command is one external command that gets a message on its standard
// input, as Postfix's pipe_command() runs them for local(8) and pipe(8).
type Command struct {
	// Argv is run directly (pipe(8)'s argv=). When empty, Line is used.
	Argv []string
	// Line is a command line (local(8)'s |command, mailbox_command). It
	// runs through Shell, or /bin/sh -c only when it holds shell
	// metacharacters; otherwise it is split on white space and run
	// directly.
	Line  string
	Shell string // local_command_shell; "" = as above
	Env   []string
	Dir   string
	// UID/GID to run as when Setuid (mtad runs as root).
	UID, GID  int
	Setuid    bool
	TimeLimit time.Duration // command_time_limit; 0 = none
}

// shellChars make exec_command() hand a command line to /bin/sh.
const shellChars = "!\"#$%&'()*;<=>?[\\]^`{|}~\n\r"

// name is what messages call the command (args.command in Postfix).
func (c *Command) name() string {
	if len(c.Argv) > 0 {
		return c.Argv[0]
	}
	return c.Line
}

func (c *Command) argv() []string {
	switch {
	case len(c.Argv) > 0:
		return c.Argv
	case c.Shell != "":
		return append(strings.Fields(c.Shell), c.Line)
	case strings.ContainsAny(c.Line, shellChars):
		return []string{"/bin/sh", "-c", c.Line}
	}
	return strings.Fields(c.Line)
}

// outputLimit bounds the command output kept for the diagnostic, as
// Postfix's log_buf does.
const outputLimit = 4096

// Run starts the command, feeds it the message through write and waits.
// It returns nil when the command exits 0, else an *Error worded and
// classified as pipe_command() does: a DSN at the start of the output wins,
// then the sysexits.h meaning of the exit status.
func (c *Command) Run(ctx context.Context, write func(io.Writer) error) error {
	argv := c.argv()
	if len(argv) == 0 {
		return &Error{DSN: "5.3.5", Text: "empty command"}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = c.Env
	cmd.Dir = c.Dir
	// Its own process group, so that a time limit kills its children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if c.Setuid {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(c.UID), Gid: uint32(c.GID), Groups: []uint32{}}
	}
	out := &capped{limit: outputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	// A child that leaves descendants holding its output open must not
	// hang the delivery once it has exited.
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return &Error{DSN: "4.3.0", Text: "cannot create pipe: " + err.Error()}
	}
	if err := cmd.Start(); err != nil {
		return &Error{DSN: "4.3.0", Text: fmt.Sprintf("cannot execute command %q: %s", c.name(), ErrnoText(err))}
	}
	var (
		mu       sync.Mutex
		timedOut bool
		stopped  bool
	)
	kill := func(timeout bool) {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		timedOut = timedOut || timeout
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	var timer *time.Timer
	if c.TimeLimit > 0 {
		timer = time.AfterFunc(c.TimeLimit, func() { kill(true) })
	}
	stopCtx := context.AfterFunc(ctx, func() { kill(false) })
	werr := write(stdin)
	stdin.Close()
	waitErr := cmd.Wait()
	mu.Lock()
	stopped = true
	mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
	stopCtx()
	// The whole group goes, so that no background child outlives delivery.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)

	output := out.text()
	withOutput := func(s string) string {
		if output != "" {
			return s + ". Command output: " + output
		}
		return s
	}
	if timedOut {
		return &Error{DSN: "5.3.0", Text: withOutput(fmt.Sprintf("Command time limit exceeded: %q", c.name()))}
	}
	if ctx.Err() != nil {
		return &Error{DSN: "4.3.0", Text: "delivery interrupted: " + ctx.Err().Error()}
	}
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		ws, _ := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			return &Error{DSN: "4.3.0", Text: withOutput(fmt.Sprintf("Command died with signal %d: %q", int(ws.Signal()), c.name()))}
		}
		code := ws.ExitStatus()
		if dsn, text, ok := splitDSN(output); ok {
			return &Error{DSN: dsn, Text: text}
		}
		if se, ok := sysExits[code]; ok {
			return &Error{DSN: se.dsn, Text: withOutput(se.text)}
		}
		return &Error{DSN: "5.3.0", Text: withOutput(fmt.Sprintf("Command died with status %d: %q", code, c.name()))}
	}
	if waitErr != nil && !errors.Is(waitErr, exec.ErrWaitDelay) {
		return &Error{DSN: "4.3.0", Text: fmt.Sprintf("command %q: %v", c.name(), waitErr)}
	}
	var re *ReadError
	if errors.As(werr, &re) {
		return &Error{DSN: "4.3.0", Text: re.Error()}
	}
	if werr != nil && !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, io.ErrClosedPipe) && !errors.Is(werr, syscall.EFBIG) {
		return &Error{DSN: "5.3.0", Text: fmt.Sprintf("Command failed: %s: %q", ErrnoText(werr), c.name())}
	}
	return nil
}

// splitDSN takes "4.2.1 text" from the start of command output.
func splitDSN(s string) (dsn, text string, ok bool) {
	word, rest, _ := strings.Cut(s, " ")
	p := strings.Split(word, ".")
	if len(p) != 3 || (p[0] != "2" && p[0] != "4" && p[0] != "5") {
		return "", "", false
	}
	for _, n := range p[1:] {
		if n == "" || len(n) > 3 || strings.Trim(n, "0123456789") != "" {
			return "", "", false
		}
	}
	if p[0] == "2" { // a failed command cannot report success
		return "", "", false
	}
	return word, strings.TrimSpace(rest), true
}

type sysExit struct{ dsn, text string }

// sysExits is Postfix's sys_exits.c table.
var sysExits = map[int]sysExit{
	64: {"5.3.0", "command line usage error"},
	65: {"5.6.0", "data format error"},
	66: {"5.3.0", "cannot open input"},
	67: {"5.1.1", "user unknown"},
	68: {"5.1.2", "host name unknown"},
	69: {"5.3.0", "service unavailable"},
	70: {"5.3.0", "internal software error"},
	71: {"4.3.0", "system resource problem"},
	72: {"5.3.0", "critical OS file missing"},
	73: {"5.2.0", "can't create user output file"},
	74: {"5.3.0", "input/output error"},
	75: {"4.3.0", "temporary failure"},
	76: {"5.5.0", "remote error in protocol"},
	77: {"5.7.0", "permission denied"},
	78: {"5.3.5", "local configuration error"},
}

// capped keeps the first limit bytes written and discards the rest.
type capped struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	limit int
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.limit - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// text is the output as Postfix logs it: tabs and newlines become spaces,
// other unprintable bytes "_".
func (c *capped) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := []byte(c.buf.String())
	for i, ch := range b {
		switch {
		case ch == '\t' || ch == '\n':
			b[i] = ' '
		case ch < 0x20 || ch >= 0x7f:
			b[i] = '_'
		}
	}
	return string(b)
}
