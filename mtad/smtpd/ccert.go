package smtpd

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"hash"
	"strings"
)

// The restrictions on TLS client certificates: permit_tls_clientcerts,
// permit_tls_all_clientcerts and check_ccert_access (smtpd_check.c). A
// certificate is seen only when smtpd_tls_ask_ccert makes the server ask.

// inspectClientCert fingerprints the client's certificate and checks it
// against smtpd_tls_CAfile. An untrusted certificate does not fail the
// handshake: as in Postfix, it still has fingerprints to look up.
func (s *session) inspectClientCert(st *tls.ConnectionState) clientCert {
	if len(st.PeerCertificates) == 0 {
		return clientCert{}
	}
	leaf := st.PeerCertificates[0]
	c := clientCert{present: true, cn: leaf.Subject.CommonName,
		certFP: fingerprint(s.cfg.TLS.Digest, leaf.Raw),
		pkeyFP: fingerprint(s.cfg.TLS.Digest, leaf.RawSubjectPublicKeyInfo)}
	if s.cfg.TLS.ClientCAs != nil {
		inter := x509.NewCertPool()
		for _, ic := range st.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: s.cfg.TLS.ClientCAs, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		c.trusted = err == nil
	}
	return c
}

// fingerprint is Postfix's: the digest of the DER bytes as upper-case hex
// pairs joined by colons.
func fingerprint(digest string, der []byte) string {
	var h hash.Hash
	switch strings.ToLower(digest) {
	case "md5":
		h = md5.New()
	case "sha1":
		h = sha1.New()
	case "sha512":
		h = sha512.New()
	default:
		h = sha256.New()
	}
	h.Write(der)
	sum := h.Sum(nil)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// ccertRestriction evaluates the client-certificate restrictions; ok is
// false for other names.
func (s *session) ccertRestriction(lname, table string) (st int, ok bool) {
	switch lname {
	case "permit_tls_all_clientcerts":
		if s.ccert.trusted {
			return permit, true
		}
		return dunno, true
	case "permit_tls_clientcerts":
		if !s.ccert.present || s.cfg.TLS.RelayClientCerts == "" {
			return dunno, true
		}
		ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
		defer cancel()
		for _, fp := range []string{s.ccert.certFP, s.ccert.pkeyFP} {
			if _, found, err := s.cfg.relayCerts.Find(ctx, fp, false); err != nil {
				s.logf("warning: relay_clientcerts: %s lookup error for \"%s\": %v", s.cfg.TLS.RelayClientCerts, fp, err)
				return s.serverError(), true
			} else if found {
				return permit, true
			}
		}
		return dunno, true
	case "check_ccert_access":
		if !s.ccert.present {
			return dunno, true
		}
		// Postfix 3.7's default search_order: the certificate's, then the
		// public key's fingerprint.
		for _, fp := range []string{s.ccert.certFP, s.ccert.pkeyFP} {
			if st, found := s.checkAccess(table, fp, true, s.ccert.cn, classCcert); st != dunno || found {
				return st, true
			}
		}
		return dunno, true
	}
	return dunno, false
}
