package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"sqlmta/internal/peers"
)

// postconfMaster makes postconf know the smtp_* and lmtp_* parameters.
const postconfMaster = "smtp unix - - n - - smtp\nlmtp unix - - n - - lmtp\n"

// trickyMainCFs are main.cf files whose -n and -n -x listings must be the
// same from postconf and from mtactl conf, warnings included.
var trickyMainCFs = map[string]string{
	"continuation_comments": "# head\nmyhostname = mx1.example.com\nrelay_domains = a,   b\n   # indented comment\n  c\td\n\nsmtpd_banner =\n   \nbody_checks = a # not a comment\n",
	"overrides_undefined":   "myhostname = a.example\nmydestination = $my_used, $undefined_thing\nmy_used = x\nfoo = $bar\nbar = 1\ncompatibility_level = 3.6\n",
	"conditionals":          "mydomain = example.com\nmy_extra = e.example\nrelay_domains = ${my_extra?{$my_extra}:{none}} ${{$compatibility_level} <level {3.6} ? {old} : {new}}\nsmtpd_banner = $myhostname ESMTP $$1 $(mail_name)\nrecipient_delimiter = ${undefined_x:{+}}\ncompatibility_level = 2\n",
	"raw_legacy_classes":    "forward_path = $home/x $myhostname\ndefault_rbl_reply = $rbl_code $myhostname\nvirtual_maps = hash:/etc/postfix/virtual\nsmtpd_restriction_classes = my_class, missing_class\nmy_class = reject\nsmtpd_tls_loglevel = 1\nstress = yes\nsmtpd_hard_error_limit = ${stress?{1}:{20}}\ncompatibility_level = 3.6\n",
	"no_final_newline":      "compatibility_level = 3.6\nmyhostname = c.example\nsmtpd_client_restrictions = permit_mynetworks,\n\tcheck_client_access { inline:{ 1.2.3.4=REJECT } },\n\treject",
}

func writeConf(t *testing.T, mainCf string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range map[string]string{"main.cf": mainCf, "master.cf": postconfMaster} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runPostconf(t *testing.T, bin string, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("postconf %v: %v\n%s", args, err, e.String())
	}
	// postconf names itself by argv[0] in warnings.
	return o.String(), strings.ReplaceAll(e.String(), bin+": ", "postconf: ")
}

func sortedLines(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	sort.Strings(l)
	return strings.Join(l, "\n")
}

func TestConfAgainstPostconf(t *testing.T) {
	postconf := peers.Require(t, "postconf")
	for name, text := range trickyMainCFs {
		name, text := name, text
		for _, opts := range [][]string{{"-n", "-x"}, {"-n"}, {"-nx"},
			{"-x", "mydestination", "relay_domains", "smtpd_banner", "nosuch", "my_used", "foo", "my_class", "fallback_relay"},
			{"-h", "-x", "relay_domains", "smtpd_hard_error_limit"}, {"-H", "myhostname", "nosuch"}} {
			opts := opts
			t.Run(name+strings.Join(opts, ""), func(t *testing.T) {
				t.Parallel() // postconf spends seconds resolving the host name
				dir := writeConf(t, text)
				wantOut, wantErr := runPostconf(t, postconf, append([]string{"-c", dir}, opts...)...)
				out, errOut, code := mtactl(t, append([]string{"-c", dir, "conf"}, opts...)...)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				if out != wantOut {
					t.Errorf("stdout:\n%s\npostconf:\n%s", out, wantOut)
				}
				if sortedLines(errOut) != sortedLines(wantErr) {
					t.Errorf("stderr:\n%s\npostconf:\n%s", errOut, wantErr)
				}
			})
		}
	}
}

func TestConfDefaultsAgainstPostconf(t *testing.T) {
	postconf := peers.Require(t, "postconf")
	dir := writeConf(t, "myhostname = ignored.example\n")
	names := []string{"mydestination", "relay_domains", "nosuch", "myhostname", "mydomain", "smtpd_tls_loglevel",
		"virtual_maps", "forward_path", "smtpd_expansion_filter", "delay_warning_time"}
	// postconf -d -x expands at compatibility level 0, ours at 3.6: -x only
	// for names that do not depend on it.
	xnames := []string{"mydestination", "myhostname", "forward_path", "smtpd_tls_loglevel", "nosuch"}
	for _, opts := range [][]string{append([]string{"-d"}, names...), append([]string{"-dh"}, names...), append([]string{"-d", "-x"}, xnames...)} {
		wantOut, wantErr := runPostconf(t, postconf, append([]string{"-c", dir}, opts...)...)
		out, errOut, _ := mtactl(t, append([]string{"-c", dir, "conf"}, opts...)...)
		if out != wantOut || errOut != wantErr {
			t.Errorf("%v: got\n%s%s\npostconf:\n%s%s", opts, out, errOut, wantOut, wantErr)
		}
	}
}

func TestConfMapTypes(t *testing.T) {
	out, _, code := mtactl(t, "conf", "-m")
	want := "btree\ncdb\ncidr\nfail\nhash\ninline\nlmdb\nmysql\nnis\npcre\npgsql\nproxy\nregexp\nsqlite\nstatic\ntexthash\nunix\n"
	if code != 0 || out != want {
		t.Errorf("conf -m = %d %q", code, out)
	}
}

// editMainCF has continuation lines, comments inside them, duplicates, CRLF
// and no final newline: everything an in-place edit must keep or drop as
// postconf does.
const editMainCF = "# head comment\n\nmyhostname = old.example\nrelay_domains = a,\n  # inside\n   b,\n\n\tc\nmydestination = x\r\nmyhostname = dup.example\n  cont\nalias_maps = hash:/etc/aliases\n# tail\nbody_checks = last"

func TestConfEditAgainstPostconf(t *testing.T) {
	postconf := peers.Require(t, "postconf")
	cases := [][]string{
		{"-e", "myhostname = new.example", "aaa_new =  two words  "},
		{"relay_domains=$mydestination", "body_checks=regexp:/x"},
		{"-e", "alias_maps=a", "alias_maps=b"},
		{"-X", "relay_domains", "myhostname", "nosuch"},
		{"-#", "relay_domains", "myhostname", "body_checks"},
		{"-X", "mydestination"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			a, b := writeConf(t, editMainCF), writeConf(t, editMainCF)
			_, wantErr := runPostconf(t, postconf, append([]string{"-c", a}, args...)...)
			_, errOut, code := mtactl(t, append([]string{"-c", b, "conf"}, args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			want, err := os.ReadFile(filepath.Join(a, "main.cf"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(b, "main.cf"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("main.cf:\n%q\npostconf:\n%q", got, want)
			}
			if errOut != strings.ReplaceAll(wantErr, a, b) {
				t.Errorf("stderr %q, postconf %q", errOut, wantErr)
			}
			ents, _ := os.ReadDir(b)
			if len(ents) != 2 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
}
