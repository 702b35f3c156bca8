package config

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sqlmta/internal/peers"
)

// trickyMainCF exercises continuation, comments, conditionals, relational and
// compatibility-level operators, $$, legacy $(…) and user-defined names, all
// reached from real Postfix parameters (postconf only prints those).
const trickyMainCF = `# comment
myhostname = mx1.example.com
mydomain = example.com
relay_domains = $mydomain,
   # indented comment
  ${my_extra_domains?{$my_extra_domains}:{none.invalid}}
my_extra_domains = a.example ${{$mail_version} >=level {3.6} ? {new.example} : {old.example}}
smtpd_banner = $myhostname ESMTP $mail_name ($$1 $(mail_name))
mail_name = ${{$my_count} > {9} ? {Big} : {Small}}
my_count = 10
recipient_delimiter = ${undefined_x:{+}}
virtual_alias_domains = ${{x} < {y}?{lt}:{ge}} ${{ab}>={b}?{ge}:{lt}}
smtpd_client_restrictions = permit_mynetworks,
	check_client_access { inline:{ 1.2.3.4=REJECT } },
	reject
myorigin = ${myhostname:{unused}}${mydomain?{}}
header_size_limit = 102400
smtp_helo_name = ${my_empty?{x}:{y}}|${my_empty:{z}}|${my_ref_empty?{set}}
my_empty =
my_ref_empty = $my_empty
mydestination = ${{$compatibility_level} <level {3.6} ? {old} : {new}}, localhost
`

func TestAgainstPostconf(t *testing.T) {
	postconf, err := exec.LookPath("postconf")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("postconf not installed, and CI is set: install the postfix package")
		}
		t.Skip("postconf not installed")
	}
	for _, level := range []string{"3.6", "0", "2"} {
		t.Run("level_"+level, func(t *testing.T) {
			dir := t.TempDir()
			text := trickyMainCF + "compatibility_level = " + level + "\n"
			if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			// postconf knows smtp_* and lmtp_*_limit only for transports
			// that master.cf defines.
			master := "smtp unix - - n - - smtp\nlmtp unix - - n - - lmtp\n"
			if err := os.WriteFile(filepath.Join(dir, "master.cf"), []byte(master), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range Defaults() {
				if _, postfix := postfixIndex[p.Name]; !postfix {
					continue // sqlmta's own parameter (database_url, qmgr_*, …)
				}
				switch p.Name {
				case // sqlmta's own directories, on purpose.
					"data_directory", "queue_directory",
					// templates of per-message names.
					"default_rbl_reply", "forward_path":
					continue
				}
				names = append(names, p.Name)
			}
			cmd := exec.Command(postconf, append([]string{"-c", dir, "-x"}, names...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("postconf: %v\n%s", err, stderr.String())
			}
			got := map[string]string{}
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				k, v, _ := strings.Cut(sc.Text(), " =")
				got[k] = strings.TrimPrefix(v, " ")
			}
			if len(got) != len(names) {
				t.Errorf("postconf printed %d parameters, asked for %d", len(got), len(names))
			}
			for _, n := range names {
				pv, ok := got[n]
				if !ok {
					t.Errorf("postconf did not print %s", n)
					continue
				}
				ours := c.Get(n)
				// postconf folds runs of whitespace when printing.
				if strings.Join(strings.Fields(ours), " ") != strings.Join(strings.Fields(pv), " ") {
					t.Errorf("%s: ours %q, postconf %q", n, ours, pv)
				}
			}
		})
	}
}

// TestDefaultsAgainstPostconfD checks every default in our tables against
// `postconf -d NAME`, byte for byte after postconf's whitespace folding.
func TestDefaultsAgainstPostconfD(t *testing.T) {
	postconf := peers.Require(t, "postconf")
	dir := t.TempDir()
	master := "smtp unix - - n - - smtp\nlmtp unix - - n - - lmtp\n"
	if err := os.WriteFile(filepath.Join(dir, "master.cf"), []byte(master), 0o644); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range AllDefaults() {
		names = append(names, p.Name)
	}
	cmd := exec.Command(postconf, append([]string{"-c", dir, "-d"}, names...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("postconf: %v\n%s", err, stderr.String())
	}
	theirs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		k, v, _ := strings.Cut(line, " =")
		theirs[k] = strings.TrimPrefix(v, " ")
	}
	// Names postconf does not know are sqlmta's own; it must say so.
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		n, ok := strings.CutSuffix(strings.TrimPrefix(line, "postconf: warning: "), ": unknown parameter")
		if !ok || Known(n) && paramIndex[n] == nil {
			t.Errorf("unexpected postconf message %q", line)
		}
	}
	sqlmtaOwn := map[string]bool{
		// The four documented in params.go.
		"compatibility_level": true, "config_directory": true, "data_directory": true, "queue_directory": true,
		// Derived from compatibility_level: checked below at level 0.
		"mynetworks": true,
	}
	checked := 0
	for _, p := range AllDefaults() {
		pv, ok := theirs[p.Name]
		if !ok || sqlmtaOwn[p.Name] {
			continue
		}
		checked++
		if strings.Join(strings.Fields(p.Default), " ") != pv {
			t.Errorf("%s: ours %q, postconf -d %q", p.Name, p.Default, pv)
		}
	}
	if checked < 800 {
		t.Errorf("only %d defaults compared", checked)
	}
	// postconf -d computes mynetworks at compatibility level 0 (subnet
	// style); ours must agree once main.cf says so.
	c, err := Parse("main.cf", strings.NewReader("compatibility_level = 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Get("mynetworks"); got != theirs["mynetworks"] {
		t.Errorf("mynetworks at level 0: ours %q, postconf -d %q", got, theirs["mynetworks"])
	}
}
