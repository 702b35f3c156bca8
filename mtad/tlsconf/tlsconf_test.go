package tlsconf

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"

	"sqlmta/internal/testcert"
)

func TestProtocols(t *testing.T) {
	for _, tc := range []struct {
		spec     string
		min, max uint16
		bad      bool
	}{
		{spec: ">=TLSv1", min: tls.VersionTLS10, max: tls.VersionTLS13},
		{spec: "!SSLv2, !SSLv3", min: tls.VersionTLS10, max: tls.VersionTLS13},
		{spec: "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", min: tls.VersionTLS12, max: tls.VersionTLS13},
		{spec: ">=TLSv1.2", min: tls.VersionTLS12, max: tls.VersionTLS13},
		{spec: "<=TLSv1.2", min: tls.VersionTLS10, max: tls.VersionTLS12},
		{spec: ">=TLSv1.1 <=TLSv1.2", min: tls.VersionTLS11, max: tls.VersionTLS12},
		{spec: "TLSv1.2 TLSv1.3", min: tls.VersionTLS12, max: tls.VersionTLS13},
		{spec: "TLSv1.2:TLSv1.3", min: tls.VersionTLS12, max: tls.VersionTLS13},
		{spec: "", min: tls.VersionTLS10, max: tls.VersionTLS13},
		{spec: "SSLv3", bad: true},
		{spec: ">=TLSv1.4", bad: true},
		{spec: "!TLSv1, !TLSv1.1, !TLSv1.2, !TLSv1.3", bad: true},
	} {
		minV, maxV, err := Protocols(tc.spec)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: no error (%x..%x)", tc.spec, minV, maxV)
			}
			continue
		}
		if err != nil || minV != tc.min || maxV != tc.max {
			t.Errorf("%q: %x..%x, %v; want %x..%x", tc.spec, minV, maxV, err, tc.min, tc.max)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testcert.Files(t, dir, "mx.test")
	if _, err := LoadPair(certFile, keyFile); err != nil {
		t.Errorf("LoadPair: %v", err)
	}
	c, _ := os.ReadFile(certFile)
	k, _ := os.ReadFile(keyFile)
	chain := filepath.Join(dir, "chain.pem")
	os.WriteFile(chain, append(k, c...), 0o600)
	if _, err := LoadChainFile(chain); err != nil {
		t.Errorf("LoadChainFile: %v", err)
	}
	// The key in the certificate file, as Postfix allows with key_file unset.
	if _, err := LoadPair(chain, ""); err != nil {
		t.Errorf("LoadPair with the key in the certificate file: %v", err)
	}
	if _, err := LoadPair(certFile, ""); err == nil {
		t.Errorf("a certificate file without a key loaded")
	}
	if _, err := LoadPair(filepath.Join(dir, "missing.pem"), keyFile); err == nil {
		t.Errorf("a missing file loaded")
	}
}
