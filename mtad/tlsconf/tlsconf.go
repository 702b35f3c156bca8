// Package tlsconf turns Postfix's *_tls_* parameters into crypto/tls
// settings: the protocol lists and the server's certificate files.
package tlsconf

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
)

// versions are the protocol names Postfix accepts, oldest first. SSLv2 and
// SSLv3 are named so that "!SSLv3" parses; Go speaks neither.
var versions = []struct {
	name string
	v    uint16
}{
	{"SSLv2", 0}, {"SSLv3", 0},
	{"TLSv1", tls.VersionTLS10}, {"TLSv1.1", tls.VersionTLS11},
	{"TLSv1.2", tls.VersionTLS12}, {"TLSv1.3", tls.VersionTLS13},
}

func index(name string) int {
	for i, p := range versions {
		if strings.EqualFold(p.name, name) {
			return i
		}
	}
	return -1
}

// Protocols reads a smtpd_tls_protocols-style value: ">=TLSv1.2",
// "<=TLSv1.2", exclusions ("!SSLv2, !SSLv3, !TLSv1") or an explicit list
// ("TLSv1.2 TLSv1.3"), and returns the range of TLS versions it allows.
func Protocols(spec string) (minV, maxV uint16, err error) {
	allowed := make([]bool, len(versions))
	explicit := false
	fields := strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == ':' })
	for _, f := range fields {
		if strings.HasPrefix(f, "!") || strings.HasPrefix(f, ">=") || strings.HasPrefix(f, "<=") {
			continue
		}
		i := index(f)
		if i < 0 {
			return 0, 0, fmt.Errorf("unknown TLS protocol %q", f)
		}
		allowed[i] = true
		explicit = true
	}
	if !explicit {
		for i := range allowed {
			allowed[i] = true
		}
	}
	for _, f := range fields {
		var name string
		var keep func(i, at int) bool
		switch {
		case strings.HasPrefix(f, "!"):
			name, keep = f[1:], func(i, at int) bool { return i != at }
		case strings.HasPrefix(f, ">="):
			name, keep = f[2:], func(i, at int) bool { return i >= at }
		case strings.HasPrefix(f, "<="):
			name, keep = f[2:], func(i, at int) bool { return i <= at }
		default:
			continue
		}
		at := index(name)
		if at < 0 {
			return 0, 0, fmt.Errorf("unknown TLS protocol %q", name)
		}
		for i := range allowed {
			allowed[i] = allowed[i] && keep(i, at)
		}
	}
	for i, ok := range allowed {
		if !ok || versions[i].v == 0 {
			continue
		}
		if minV == 0 {
			minV = versions[i].v
		}
		maxV = versions[i].v
	}
	if minV == 0 {
		return 0, 0, fmt.Errorf("%q leaves no TLS protocol enabled", spec)
	}
	return minV, maxV, nil
}

// LoadChainFile reads a file that holds a private key and its certificate
// chain in PEM, in any order (smtpd_tls_chain_files).
func LoadChainFile(name string) (tls.Certificate, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return tls.Certificate{}, err
	}
	var certs, keys []byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		enc := pem.EncodeToMemory(blk)
		if blk.Type == "CERTIFICATE" {
			certs = append(certs, enc...)
		} else if strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			keys = append(keys, enc...)
		}
	}
	c, err := tls.X509KeyPair(certs, keys)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// LoadPair reads a certificate (chain) file and its key file; the key may
// be in the certificate file, as Postfix allows.
func LoadPair(certFile, keyFile string) (tls.Certificate, error) {
	if keyFile == "" || keyFile == certFile {
		return LoadChainFile(certFile)
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s, %s: %w", certFile, keyFile, err)
	}
	return c, nil
}
