package sasl

import (
	"reflect"
	"strings"
	"testing"
)

// The flags Dovecot 2.3 gives its mechanisms.
var dovecotMechs = []Mechanism{
	{Name: "PLAIN", Flags: []string{"plaintext"}},
	{Name: "LOGIN", Flags: []string{"plaintext"}},
	{Name: "CRAM-MD5", Flags: []string{"dictionary", "active"}},
	{Name: "ANONYMOUS", Flags: []string{"anonymous"}},
	{Name: "SCRAM-SHA-256", Flags: []string{"mutual-auth"}},
	{Name: "EXTERNAL"},
	{Name: "GSSAPI", Flags: []string{"ACTIVE", "Mutual-Auth"}},
}

func TestFilter(t *testing.T) {
	for _, tc := range []struct {
		opts string
		want string
	}{
		{"", "PLAIN LOGIN CRAM-MD5 ANONYMOUS SCRAM-SHA-256 EXTERNAL GSSAPI"},
		{"noanonymous", "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 EXTERNAL GSSAPI"},
		{"noplaintext noanonymous", "CRAM-MD5 SCRAM-SHA-256 EXTERNAL GSSAPI"},
		{"NoPlainText NOACTIVE", "ANONYMOUS SCRAM-SHA-256 EXTERNAL"},
		{"nodictionary", "PLAIN LOGIN ANONYMOUS SCRAM-SHA-256 EXTERNAL GSSAPI"},
		{"mutual_auth", "SCRAM-SHA-256 GSSAPI"},
		{"mutual_auth noactive", "SCRAM-SHA-256"},
		{"forward_secrecy", ""},
	} {
		got, err := Filter(dovecotMechs, strings.Fields(tc.opts))
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.opts, got, err, tc.want)
		}
	}
	if _, err := Filter(dovecotMechs, []string{"noanonymous", "nosuch"}); err == nil {
		t.Error("an unknown option was accepted")
	}
}

func TestMechanismFilter(t *testing.T) {
	names := []string{"PLAIN", "LOGIN", "CRAM-MD5", "EXTERNAL"}
	for _, tc := range []struct {
		items []string
		want  []string
	}{
		{[]string{"!external", "static:rest"}, []string{"PLAIN", "LOGIN", "CRAM-MD5"}}, // Postfix's default
		{[]string{"login", "cram-md5"}, []string{"LOGIN", "CRAM-MD5"}},
		{[]string{"!plain", "static:rest"}, []string{"LOGIN", "CRAM-MD5", "EXTERNAL"}},
		{[]string{"plain", "!plain", "static:all"}, names},
		{[]string{"!PLAIN", "!LOGIN"}, []string{}},
		{[]string{}, []string{}},
	} {
		f, err := ParseMechanismFilter(tc.items)
		if err != nil {
			t.Fatalf("%q: %v", tc.items, err)
		}
		if got := f.Apply(names); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %q, want %q", tc.items, got, tc.want)
		}
	}
	for _, bad := range [][]string{{"hash:/etc/postfix/mechs"}, {"/etc/postfix/mechs"}, {"!"}} {
		if _, err := ParseMechanismFilter(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}
