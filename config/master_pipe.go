package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// PipeService is a master.cf pipe(8) entry:
//
//	name unix - n n - - pipe flags=DRhu user=vmail argv=/usr/bin/cmd ${recipient}
type PipeService struct {
	Name  string // the transport name (first column)
	Flags string // flags=
	User  string // user=, "name" or "name:group"
	Size  string // size=
	// NullSender is null_sender= ("MAILER-DAEMON" when not given).
	NullSender string
	Argv       []string          // argv=, unexpanded
	Overrides  map[string]string // -o name=value
	File       string
	Line       int
}

// LoadPipeServices reads dir/master.cf and returns its pipe services; a
// missing master.cf yields nil, nil.
func LoadPipeServices(dir string) ([]PipeService, error) {
	return loadMaster(dir, ParsePipeServices)
}

// loadMaster parses dir/master.cf with parse; a missing file yields the
// zero value and no error.
func loadMaster[T any](dir string, parse func(string, io.Reader) (T, error)) (T, error) {
	var zero T
	path := filepath.Join(dir, "master.cf")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return zero, nil
	}
	if err != nil {
		return zero, err
	}
	defer f.Close()
	return parse(path, f)
}

// ParsePipeServices returns the pipe services of master.cf text.
func ParsePipeServices(name string, r io.Reader) ([]PipeService, error) {
	lines, err := readLogicalLines(name, r)
	if err != nil {
		return nil, err
	}
	var out []PipeService
	for _, l := range lines {
		if l.warning != "" {
			continue
		}
		f := strings.Fields(l.text)
		if len(f) < 8 || f[1] != "unix" || f[7] != "pipe" {
			continue
		}
		// The line's syntax (fields, -o options) is checked by ParseMaster.
		if _, _, err := parseMasterLine(name, l); err != nil {
			return nil, err
		}
		s := PipeService{Name: f[0], NullSender: "MAILER-DAEMON", Overrides: map[string]string{}, File: name, Line: l.line}
		args := splitArgs(f, l.text)[1:]
		for i := 0; i < len(args); i++ {
			a := args[i]
			switch {
			case a == "-o" && i+1 < len(args):
				i++
				k, v, _ := strings.Cut(args[i], "=")
				s.Overrides[strings.TrimSpace(k)] = strings.TrimSpace(v)
			case strings.HasPrefix(a, "-"):
			case strings.HasPrefix(a, "flags="):
				s.Flags = a[len("flags="):]
			case strings.HasPrefix(a, "user="):
				s.User = a[len("user="):]
			case strings.HasPrefix(a, "size="):
				s.Size = a[len("size="):]
			case strings.HasPrefix(a, "null_sender="):
				s.NullSender = a[len("null_sender="):]
			case strings.HasPrefix(a, "argv="):
				s.Argv = append([]string{a[len("argv="):]}, args[i+1:]...)
				i = len(args)
			default:
				// eol=, directory=, chroot=, … are accepted and ignored.
			}
		}
		if len(s.Argv) == 0 || s.Argv[0] == "" {
			return nil, &ParseError{File: name, Line: l.line, Msg: "pipe service " + s.Name + ": missing argv= command attribute"}
		}
		if s.User == "" {
			return nil, &ParseError{File: name, Line: l.line, Msg: "pipe service " + s.Name + ": missing user= command attribute"}
		}
		out = append(out, s)
	}
	return out, nil
}
