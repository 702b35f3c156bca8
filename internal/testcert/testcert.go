// Package testcert makes throwaway self-signed certificates for tests of
// STARTTLS, in memory or as PEM files a peer such as Postfix can read.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PEM returns a self-signed certificate for host and its PKCS#8 key, PEM
// encoded, valid from an hour ago for a day.
func PEM(t testing.TB, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	der, key := sign(t, template(host, x509.ExtKeyUsageServerAuth), nil, nil)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// template is a certificate for name valid from an hour ago for a day.
func template(name string, usage x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
}

// sign makes a key for tmpl and signs it with parent's key, or with its
// own when parent is nil.
func sign(t testing.TB, tmpl, parent *x509.Certificate, parentKey any) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

// Files writes a certificate for host to dir as cert.pem and key.pem (the
// key mode 0600) and returns their paths.
func Files(t testing.TB, dir, host string) (certFile, keyFile string) {
	t.Helper()
	c, k := PEM(t, host)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, c, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, k, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// Server returns a server tls.Config with a certificate for host.
func Server(t testing.TB, host string) *tls.Config {
	t.Helper()
	c, k := PEM(t, host)
	cert, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

// CA is a throwaway certificate authority that issues client certificates.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	PEM  []byte // the CA certificate, PEM encoded
}

// NewCA makes a self-signed CA named name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	tmpl := template(name, 0)
	tmpl.ExtKeyUsage, tmpl.DNSNames = nil, nil
	tmpl.KeyUsage |= x509.KeyUsageCertSign
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	der, key := sign(t, tmpl, nil, nil)
	cert, _ := x509.ParseCertificate(der)
	return &CA{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Client issues a client certificate for name; a nil CA makes it
// self-signed.
func (ca *CA) Client(t testing.TB, name string) tls.Certificate {
	t.Helper()
	var der []byte
	var key *ecdsa.PrivateKey
	if ca == nil {
		der, key = sign(t, template(name, x509.ExtKeyUsageClientAuth), nil, nil)
	} else {
		der, key = sign(t, template(name, x509.ExtKeyUsageClientAuth), ca.cert, ca.key)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
