package config

import (
	"strings"
	"testing"
)

func TestParsePipeServices(t *testing.T) {
	src := "smtp inet n - n - - smtpd\n" +
		"local unix - n n - - local\n" +
		"dovecot unix - n n - - pipe\n" +
		"  -o dovecot_time_limit=30 flags=DRhu user=vmail:mail null_sender=\n" +
		"  argv=/usr/lib/dovecot/deliver -f ${sender} -d ${recipient}\n"
	got, err := ParsePipeServices("master.cf", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("got %+v", got)
	}
	s := got[0]
	if s.Name != "dovecot" || s.Flags != "DRhu" || s.User != "vmail:mail" || s.NullSender != "" || s.Line != 3 ||
		strings.Join(s.Argv, " ") != "/usr/lib/dovecot/deliver -f ${sender} -d ${recipient}" || s.Overrides["dovecot_time_limit"] != "30" {
		t.Errorf("parsed %+v", s)
	}
	for _, bad := range []string{
		"p unix - n n - - pipe flags=F argv=/bin/cat\n",  // no user=
		"p unix - n n - - pipe user=nobody flags=F\n",    // no argv=
		"p unix - n n - - pipe user=nobody -o novalue\n", // bad -o
	} {
		if _, err := ParsePipeServices("master.cf", strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
