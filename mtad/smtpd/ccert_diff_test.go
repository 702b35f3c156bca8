package smtpd

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sqlmta/internal/peers"
	"sqlmta/internal/testcert"
	"sqlmta/mtad/matchlist"
)

// TestDifferentialClientCerts runs the client-certificate restrictions
// (permit_tls_clientcerts with relay_clientcerts, permit_tls_all_clientcerts
// with smtpd_tls_CAfile, check_ccert_access) on a real Postfix 3.7 and on
// smtpd with the same certificates and tables: no TLS, TLS without a
// certificate, listed and unlisted self-signed certificates (by certificate
// and by public key fingerprint), a CA-signed one, and a rejected one.
func TestDifferentialClientCerts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	dir, certFile, keyFile, server := peerCert(t)
	ca := testcert.NewCA(t, "Test CA")
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, ca.PEM, 0o644)
	listed := (*testcert.CA)(nil).Client(t, "listed.client.test")
	byKey := (*testcert.CA)(nil).Client(t, "bykey.client.test")
	stranger := (*testcert.CA)(nil).Client(t, "stranger.client.test")
	banned := (*testcert.CA)(nil).Client(t, "banned.client.test")
	trusted := ca.Client(t, "trusted.client.test")
	fps := filepath.Join(dir, "relay_clientcerts")
	os.WriteFile(fps, []byte(fingerprint("sha256", listed.Leaf.Raw)+" listed\n"+
		fingerprint("sha256", byKey.Leaf.RawSubjectPublicKeyInfo)+" bykey\n"), 0o644)
	ccert := filepath.Join(dir, "ccert_access")
	os.WriteFile(ccert, []byte(fingerprint("sha256", banned.Leaf.Raw)+" REJECT go away\n"), 0o644)
	relay := []string{"check_ccert_access", "texthash:" + ccert, "permit_tls_clientcerts", "permit_tls_all_clientcerts", "reject_unauth_destination"}
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: "[127.0.0.1]:9", ExtraMainCf: "mydestination = local.test\nmynetworks = 127.0.0.2/32\nmyhostname = mx.test\n" +
		"smtpd_tls_cert_file = " + certFile + "\nsmtpd_tls_key_file = " + keyFile + "\nsmtpd_tls_security_level = may\n" +
		"smtpd_tls_ask_ccert = yes\nsmtpd_tls_CAfile = " + caFile + "\nrelay_clientcerts = texthash:" + fps + "\n" +
		"smtpd_relay_restrictions = " + strings.Join(relay, " ") + "\n"})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	ts := start(t, func(c *Config) {
		c.MyNetworks, _ = matchlist.ParseNetworks([]string{"127.0.0.2/32"})
		c.OpenMap = fileMaps(nil)
		c.RelayRestrictions = relay
		c.TLS = TLSConfig{Server: &tls.Config{Certificates: []tls.Certificate{server}, ClientAuth: tls.RequestClientCert},
			ClientCAs: pool, Digest: "sha256", RelayClientCerts: "texthash:" + fps}
	})
	tx := tlsStep{"EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<x@remote.example>\r\n", 3, false}
	starttls := []tlsStep{{"EHLO client.test\r\n", 1, false}, {"STARTTLS\r\n", 1, true}, tx}
	for _, tc := range []struct {
		name string
		cert *tls.Certificate
		tls  bool
	}{
		{"no TLS", nil, false}, {"no certificate", nil, true}, {"listed", &listed, true}, {"listed by key", &byKey, true},
		{"stranger", &stranger, true}, {"banned", &banned, true}, {"CA-signed", &trusted, true},
	} {
		steps := starttls
		if !tc.tls {
			steps = []tlsStep{tx}
		}
		want := tlsTranscriptWith(t, pf.Addr(), tc.cert, steps)
		got := tlsTranscriptWith(t, ts.addr, tc.cert, steps)
		t.Logf("%s: postfix:\n%s", tc.name, want)
		if want != got {
			t.Errorf("%s:\npostfix:\n%s\nsmtpd:\n%s", tc.name, want, got)
		}
	}
}
