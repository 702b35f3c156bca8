// Command postdrop is sqlmta's set-gid helper for local submission, as
// Postfix's postdrop(1): sendmail pipes it an envelope and the message, and
// it writes them as one file into $queue_directory/maildrop, a directory
// that only its group (postdrop) may write to and nobody else may read.
// The file belongs to the calling user, so its owner is the submitting uid,
// which nobody can forge; postdrop also writes that uid and the arrival
// time into the envelope and refuses input that tries to.
//
// It is a separate, small binary rather than mtactl with the set-gid bit
// so that the privileged code is this file and the maildrop format: mtactl
// links the database drivers and a dozen commands that read and write
// files, none of which should ever run with the postdrop group. It never
// opens the database.
//
// Usage: postdrop [-c config_dir] [-r] [-v]  (-r and -v are accepted for
// Postfix compatibility and change nothing). Exit status follows
// sysexits(3) as Postfix's does.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"sqlmta/config"
	"sqlmta/mtad/pickup/maildrop"
)

// sysexits(3)
const (
	exUsage       = 64
	exDataErr     = 65
	exUnavailable = 69
	exSoftware    = 70
	exCantCreat   = 73
	exTempFail    = 75
	exNoPerm      = 77
	exConfig      = 78
)

const defaultConfigDir = "/etc/sqlmta"

func main() {
	// Nothing postdrop creates should be readable by others, whatever
	// the caller's umask.
	syscall.Umask(0o077)
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// failure is a fatal error with its exit status.
type failure struct {
	code int
	msg  string
}

func fail(code int, format string, args ...any) *failure {
	return &failure{code: code, msg: fmt.Sprintf(format, args...)}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	uid := os.Getuid()
	dir := ""
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-r" || a == "-v":
		case a == "-c" && i+1 < len(args):
			i++
			dir = args[i]
		case len(a) > 2 && a[:2] == "-c":
			dir = a[2:]
		default:
			fmt.Fprintf(stderr, "postdrop: fatal: usage: postdrop [-c config_dir] [-v]\n")
			return exUsage
		}
	}
	if dir == "" {
		dir = os.Getenv("MAIL_CONFIG")
	}
	if dir == "" {
		dir = defaultConfigDir
	}
	f := drop(dir, uid, stdin, stdout)
	if f != nil {
		fmt.Fprintf(stderr, "postdrop: fatal: uid=%d: %s\n", uid, f.msg)
		return f.code
	}
	return 0
}

// privileged reports whether postdrop runs with a group its caller does
// not have (the set-gid bit).
func privileged() bool { return os.Getegid() != os.Getgid() }

// drop checks the configuration directory, writes stdin into a new
// maildrop file and prints its name.
func drop(dir string, uid int, stdin io.Reader, stdout io.Writer) *failure {
	if privileged() && uid != 0 && filepath.Clean(dir) != defaultConfigDir {
		// An unprivileged caller may name any directory: its main.cf must
		// be one root wrote, or the caller could point postdrop at a
		// maildrop of its choosing.
		resolved, err := trustedConfigDir(dir)
		if err != nil {
			return fail(exNoPerm, "untrusted configuration directory %s: %v", dir, err)
		}
		dir = resolved
	}
	cfg, err := config.Load(dir)
	if err != nil {
		return fail(exConfig, "%v", err)
	}
	limit, err := cfg.Size("message_size_limit")
	if err != nil {
		return fail(exConfig, "%v", err)
	}
	qdir := cfg.Get("queue_directory")
	if qdir == "" {
		return fail(exConfig, "queue_directory is empty")
	}
	mdir := filepath.Join(qdir, "maildrop")

	br := bufio.NewReaderSize(stdin, 64*1024)
	env, err := maildrop.Read(br, false)
	if err != nil {
		return fail(exDataErr, "%v", err)
	}
	env.UID = uid
	env.Arrival = time.Now()

	file, name, err := create(mdir)
	if err != nil {
		return fail(exCantCreat, "create file in %s: %v", mdir, err)
	}
	// Remove the incomplete file on any error or signal. A SIGKILL can
	// leave one behind; it stays ModeWriting, which pickup ignores and
	// removes once it is old.
	done := false
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGPIPE)
	go func() {
		<-sigs
		os.Remove(filepath.Join(mdir, name))
		os.Exit(exTempFail)
	}()
	defer func() {
		if !done {
			file.Close()
			os.Remove(filepath.Join(mdir, name))
		}
	}()
	bw := bufio.NewWriterSize(file, 64*1024)
	if err := maildrop.Write(bw, env, true); err != nil {
		return fail(exTempFail, "error writing queue file: %v", err)
	}
	var src io.Reader = br
	if limit > 0 {
		src = io.LimitReader(br, limit+1)
	}
	n, err := io.Copy(bw, src)
	if err != nil {
		return fail(exTempFail, "error reading input: %v", err)
	}
	if limit > 0 && n > limit {
		return fail(exUnavailable, "Message file too big")
	}
	if err := bw.Flush(); err != nil {
		return fail(exTempFail, "error writing queue file: %v", err)
	}
	if err := file.Sync(); err != nil {
		return fail(exTempFail, "error writing queue file: %v", err)
	}
	if err := file.Chmod(maildrop.ModeReady); err != nil {
		return fail(exSoftware, "chmod queue file: %v", err)
	}
	if err := file.Close(); err != nil {
		return fail(exTempFail, "error writing queue file: %v", err)
	}
	done = true
	signal.Stop(sigs)
	fmt.Fprintln(stdout, name)
	trigger(qdir)
	return nil
}

// create makes a new, exclusive maildrop file. Its owner is the caller
// (only the group is raised), its mode ModeWriting until it is complete.
func create(mdir string) (*os.File, string, error) {
	for try := 0; ; try++ {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, "", err
		}
		name := hex.EncodeToString(b[:])
		f, err := os.OpenFile(filepath.Join(mdir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, maildrop.ModeWriting)
		if err == nil {
			return f, name, nil
		}
		if !errors.Is(err, os.ErrExist) || try == 5 {
			return nil, "", err
		}
	}
}

// trigger wakes pickup through its FIFO, as Postfix's postdrop writes to
// public/pickup. Nobody listening (mtad down) is fine: the file waits.
func trigger(qdir string) {
	f, err := os.OpenFile(filepath.Join(qdir, "public", "pickup"), os.O_WRONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
		_, _ = f.Write([]byte("W"))
	}
	f.Close()
}

// trustedConfigDir resolves dir and checks that it, every directory above
// it and its main.cf belong to root and are writable by nobody else
// (directories with the sticky bit, like /tmp, may be), so that only root
// could have written that configuration. It returns the resolved path, to
// be read instead of dir so that a symbolic link cannot be swapped after
// the check.
func trustedConfigDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", err
	}
	check := func(path string, isDir bool) error {
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no owner information", path)
		}
		if st.Uid != 0 {
			return fmt.Errorf("%s is not owned by root", path)
		}
		if fi.Mode()&0o022 != 0 && !(isDir && fi.Mode()&os.ModeSticky != 0 && path != resolved) {
			return fmt.Errorf("%s is writable by group or others", path)
		}
		return nil
	}
	for p := resolved; ; p = filepath.Dir(p) {
		if err := check(p, true); err != nil {
			return "", err
		}
		if p == "/" {
			break
		}
	}
	if err := check(filepath.Join(resolved, "main.cf"), false); err != nil {
		return "", err
	}
	return resolved, nil
}
