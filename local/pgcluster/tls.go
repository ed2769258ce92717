package pgcluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// tlsFiles holds PEM-encoded material for the servers and their clients.
type tlsFiles struct {
	caPEM, certPEM, keyPEM []byte
}

// newTLSFiles makes a throwaway CA and a server certificate that it signs,
// valid for every name a local client may dial: localhost, 127.0.0.1 and ::1.
func newTLSFiles(now time.Time) (tlsFiles, error) {
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "pgcluster test CA"},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	ca, err := issue("CA", now, caTmpl, nil)
	if err != nil {
		return tlsFiles{}, err
	}
	server, err := issue("server", now, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}, &ca)
	if err != nil {
		return tlsFiles{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(server.key)
	if err != nil {
		return tlsFiles{}, fmt.Errorf("marshal server key: %w", err)
	}
	return tlsFiles{
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: server.cert.Raw}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// issued is a certificate and its key.
type issued struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

// issue makes a key and a certificate from tmpl, valid from an hour before now for 30 days,
// signed by parent (nil: self-signed).
func issue(what string, now time.Time, tmpl *x509.Certificate, parent *issued) (issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return issued{}, fmt.Errorf("generate %s key: %w", what, err)
	}
	tmpl.SerialNumber = serial()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(30*24*time.Hour)
	signer, signerCert := key, tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		return issued{}, fmt.Errorf("create %s certificate: %w", what, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return issued{}, fmt.Errorf("parse %s certificate: %w", what, err)
	}
	return issued{key: key, cert: cert}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		// crypto/rand does not fail on Linux; a fixed serial is still valid.
		return big.NewInt(1)
	}
	return n.Add(n, big.NewInt(1))
}
