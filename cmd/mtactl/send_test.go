package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"sqlmta/mtad/pickup/maildrop"
)

var buildPostdrop = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "postdrop")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "postdrop")
	out, err := exec.Command("go", "build", "-o", bin, "../postdrop").CombinedOutput()
	if err != nil {
		return "", &buildError{string(out)}
	}
	return bin, nil
})

type buildError struct{ out string }

func (e *buildError) Error() string { return "build postdrop: " + e.out }

// sendEnv is a configuration whose maildrop the real postdrop writes to.
type sendEnv struct {
	dir, maildrop string
}

func newSendEnv(t *testing.T) *sendEnv {
	t.Helper()
	bin, err := buildPostdrop()
	if err != nil {
		t.Fatal(err)
	}
	postdropForTest = bin
	dir := t.TempDir()
	q := filepath.Join(dir, "spool")
	md := filepath.Join(q, "maildrop")
	if err := os.MkdirAll(md, 0o700); err != nil {
		t.Fatal(err)
	}
	mainCf := "myhostname = mx.test.example\nqueue_directory = " + q + "\ndata_directory = " + filepath.Join(dir, "data") + "\nmessage_size_limit = 2000\n"
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte(mainCf), 0o644); err != nil {
		t.Fatal(err)
	}
	return &sendEnv{dir: dir, maildrop: md}
}

// send runs sendmail with args and input; it returns stdout, stderr, the
// exit status, and the envelope and content of the one file it dropped
// (nil when none).
func (e *sendEnv) send(t *testing.T, in string, args ...string) (string, string, int, *maildrop.Envelope, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := sendMain("sendmail", e.dir, args, strings.NewReader(in), &out, &errb)
	files, _ := os.ReadDir(e.maildrop)
	if len(files) == 0 {
		return out.String(), errb.String(), code, nil, ""
	}
	if len(files) > 1 {
		t.Fatalf("%d maildrop files", len(files))
	}
	path := filepath.Join(e.maildrop, files[0].Name())
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { f.Close(); os.Remove(path) }()
	if fi, _ := f.Stat(); fi.Mode().Perm() != maildrop.ModeReady {
		t.Errorf("maildrop file mode %v, want complete (0700)", fi.Mode())
	}
	br := bufio.NewReader(f)
	env, err := maildrop.Read(br, true)
	if err != nil {
		t.Fatal(err)
	}
	if env.UID != os.Getuid() {
		t.Errorf("uid %d, want %d", env.UID, os.Getuid())
	}
	content, _ := io.ReadAll(br)
	return out.String(), errb.String(), code, env, string(content)
}

func TestSendmailExtractRecipients(t *testing.T) {
	e := newSendEnv(t)
	msg := "To: a@b.example, \"c d\" <e@f.example>, grp: h@i.example, j@k.example;\n" +
		"Cc: (comment) l@m.example\nBcc: n@o.example,\n p@q.example\nSubject: x\n\nTo: not@header.example\n"
	_, stderr, code, env, content := e.send(t, msg, "-t", "-f", "Alice <alice@example.org>", "-F", "Alice Example", "cmd@line.example")
	if code != 0 || env == nil {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if want := []string{"cmd@line.example"}; !reflect.DeepEqual(env.Recipients, want) {
		t.Errorf("recipients %q, want %q", env.Recipients, want)
	}
	want := []string{"a@b.example", "e@f.example", "h@i.example", "j@k.example", "l@m.example", "n@o.example", "p@q.example"}
	if !reflect.DeepEqual(env.Extracted, want) {
		t.Errorf("extracted %q, want %q", env.Extracted, want)
	}
	if env.Sender != "alice@example.org" || env.FullName != "Alice Example" {
		t.Errorf("sender %q full name %q", env.Sender, env.FullName)
	}
	// Bcc stays in the file: cleanup removes it (message_drop_headers), as in Postfix.
	if content != msg {
		t.Errorf("content %q, want %q", content, msg)
	}

	// With a Resent- recipient header, only the Resent- ones count.
	msg = "To: old@example.com\nResent-To: new@example.com\nResent-Cc: cc@example.com\nResent-Bcc: bcc@example.com\nCc: old2@example.com\n\nbody\n"
	_, stderr, code, env, _ = e.send(t, msg, "-t")
	if code != 0 || env == nil {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if want := []string{"new@example.com", "cc@example.com", "bcc@example.com"}; !reflect.DeepEqual(env.Extracted, want) {
		t.Errorf("resent: extracted %q, want %q", env.Extracted, want)
	}
}

func TestSendmailDotAndLineEnds(t *testing.T) {
	e := newSendEnv(t)
	in := "From alice Mon Jan  1 00:00:00 2024\r\nSubject: dots\r\n\r\nline\r\n.\r\nafter the dot\r\n"
	_, stderr, code, env, content := e.send(t, in, "bob@example.com")
	if code != 0 || env == nil {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// From_ dropped, CRs stripped (the first line ended in CRLF), the lone dot ends the message.
	if want := "Subject: dots\n\nline\n"; content != want {
		t.Errorf("content %q, want %q", content, want)
	}
	for _, flag := range []string{"-i", "-oi"} {
		_, _, code, _, content = e.send(t, "Subject: dots\n\nline\n.\nafter the dot", flag, "bob@example.com")
		if want := "Subject: dots\n\nline\n.\nafter the dot\n"; code != 0 || content != want {
			t.Errorf("%s: exit %d content %q, want %q", flag, code, content, want)
		}
	}
	// The login name is the default sender; -N, -R, -V and -B reach the envelope.
	_, stderr, code, env, _ = e.send(t, "x\n", "-N", "success,delay", "-R", "hdrs", "-V", "env-1", "-B", "8BITMIME", "-oem", "-U", "bob@example.com")
	if code != 0 || env == nil {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if env.Sender == "" || env.Notify != "SUCCESS,DELAY" || env.Ret != "HDRS" || env.EnvID != "env-1" || env.BodyType != "8BITMIME" {
		t.Errorf("envelope %+v", env)
	}
}

func TestSendmailErrors(t *testing.T) {
	e := newSendEnv(t)
	for _, c := range []struct {
		in     string
		args   []string
		stderr string
	}{
		{"x\n", nil, "sendmail: fatal: alice(0): Recipient addresses must be specified on the command line or via the -t option\n"},
		{"Subject: x\n\n", []string{"-t"}, "sendmail: fatal: alice(0): No recipient addresses found in message header\n"},
		{"", []string{"-z"}, "sendmail: invalid option -- 'z'\nsendmail: invalid option -- 'z'\nsendmail: fatal: usage: sendmail [options]\n"},
		{"", []string{"-f"}, "sendmail: option requires an argument -- 'f'\nsendmail: option requires an argument -- 'f'\nsendmail: fatal: usage: sendmail [options]\n"},
		{"", []string{"-bz"}, "sendmail: fatal: unsupported: -bz\n"},
		{"", []string{"-qX"}, "sendmail: fatal: -qX is not implemented\n"},
		{"", []string{"-qR"}, "sendmail: fatal: specify: -qRsitename\n"},
		{"", []string{"-B", "foo"}, "sendmail: fatal: -B option needs 8BITMIME or 7BIT\n"},
		{"", []string{"-n"}, "sendmail: fatal: -n option not supported\n"},
		{"", []string{"-bp", "x"}, "sendmail: fatal: display queue mode requires no recipient\n"},
		{"", []string{"-t", "-bp"}, "sendmail: fatal: -t can be used only in delivery mode\n"},
		{"", []string{"-bi", "x"}, "sendmail: fatal: alias initialization mode requires no recipient\n"},
		{"", []string{"-qIabc", "x"}, "sendmail: fatal: flush queue_id requires no recipient\n"},
		{"", []string{"-bs", "x"}, "sendmail: fatal: stand-alone mode requires no recipient\n"},
		{"", []string{"-XVab", "x"}, "sendmail: fatal: -V requires two characters from -=+\n"},
	} {
		var out, errb bytes.Buffer
		o := &sendOpts{prog: "sendmail", dir: e.dir, aeof: true, stdout: &out, stderr: &errb, uid: 0, postdrop: postdropForTest,
			loginName: func() (string, string, error) { return "alice", "Alice", nil }}
		code := o.main(c.args, strings.NewReader(c.in))
		// Postfix's sendmail exits 75 (EX_TEMPFAIL) on every fatal error.
		if code != 75 || errb.String() != c.stderr {
			t.Errorf("sendmail %q: exit %d, stderr %q; want 75, %q", c.args, code, errb.String(), c.stderr)
		}
		if files, _ := os.ReadDir(e.maildrop); len(files) != 0 {
			t.Errorf("sendmail %q left a maildrop file", c.args)
		}
	}
	// -q with an interval only is ignored (exit 0), as Postfix's.
	if _, _, code, _, _ := e.send(t, "", "-q5m"); code != 0 {
		t.Errorf("-q5m: exit %d", code)
	}
	// Too big for message_size_limit: postdrop refuses and nothing stays.
	_, stderr, code, env, _ := e.send(t, "Subject: big\n\n"+strings.Repeat("x", 3000)+"\n", "bob@example.com")
	if code != 75 || env != nil || !strings.Contains(stderr, "Message file too big") {
		t.Errorf("big message: exit %d, file %v, stderr %q", code, env != nil, stderr)
	}
}

// TestPostdropRefusesTrustedRecords: what sendmail hands postdrop may not
// name a uid or an arrival time; only postdrop writes those.
func TestPostdropRefusesTrustedRecords(t *testing.T) {
	e := newSendEnv(t)
	cmd := exec.Command(postdropForTest, "-c", e.dir)
	cmd.Stdin = strings.NewReader(maildrop.Magic + "\nU 0\nS \"root\"\nR \"x@example.com\"\n\nhi\n")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 65 || !strings.Contains(string(out), "record U is postdrop's") {
		t.Errorf("postdrop with a U record: %v %s", err, out)
	}
	if files, _ := os.ReadDir(e.maildrop); len(files) != 0 {
		t.Errorf("postdrop left %d files", len(files))
	}
}

func TestSendmailStandaloneSMTP(t *testing.T) {
	e := newSendEnv(t)
	in := "EHLO client\r\nRCPT TO:<b@example.com>\r\nMAIL FROM:<a@example.org>\r\nMAIL FROM:<a@example.org>\r\nDATA\r\n" +
		"RCPT TO:<b@example.com>\r\nDATA\r\nSubject: bs\r\n\r\n..dot\r\n.\r\nBOGUS\r\nQUIT\r\n"
	out, stderr, code, env, content := e.send(t, in, "-bs")
	if code != 0 || env == nil {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
	want := []string{
		"220 mx.test.example ESMTP Postfix",
		"250-mx.test.example", "250-PIPELINING", "250-SIZE 2000", "250-ENHANCEDSTATUSCODES", "250 8BITMIME",
		"503 5.5.1 Error: need MAIL command",
		"250 2.1.0 Ok",
		"503 5.5.1 Error: nested MAIL command",
		"503 5.5.1 Error: need RCPT command",
		"250 2.1.5 Ok",
		"354 End data with <CR><LF>.<CR><LF>",
		"", // queued as …
		"502 5.5.2 Error: command not recognized",
		"221 2.0.0 Bye",
	}
	if len(lines) != len(want) {
		t.Fatalf("replies:\n%s", out)
	}
	for i := range want {
		if i == 12 {
			if !strings.HasPrefix(lines[i], "250 2.0.0 Ok: queued as ") {
				t.Errorf("reply %d = %q, want queued", i, lines[i])
			}
			continue
		}
		if lines[i] != want[i] {
			t.Errorf("reply %d = %q, want %q", i, lines[i], want[i])
		}
	}
	if env.Sender != "a@example.org" || !reflect.DeepEqual(env.Recipients, []string{"b@example.com"}) || content != "Subject: bs\n\n.dot\n" {
		t.Errorf("envelope %+v content %q", env, content)
	}
}
