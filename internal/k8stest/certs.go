package k8stest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"time"
)

// keyPair is a certificate and its private key, both PEM-encoded.
type keyPair struct {
	cert, key []byte
	parsed    *x509.Certificate
	priv      *ecdsa.PrivateKey
}

// newKeyPair makes a P-256 key and a certificate for it from tmpl, signed by
// ca, or self-signed when ca is nil. The certificates are valid for a day.
func newKeyPair(tmpl *x509.Certificate, ca *keyPair) (*keyPair, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	parent, signer := tmpl, priv
	if ca != nil {
		parent, signer = ca.parsed, ca.priv
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &priv.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	// SEC 1 ("EC PRIVATE KEY"): every consumer reads it, including the
	// API server's --service-account-key-file.
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return &keyPair{
		cert:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:    pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		parsed: parsed,
		priv:   priv,
	}, nil
}

// pki is what the API server and its clients need: a CA, the API server's
// serving certificate (for ips and the in-cluster names of the kubernetes
// Service), an admin client certificate (group system:masters, which RBAC
// lets do everything) and the key that signs service account tokens.
type pki struct {
	ca, serving, admin, serviceAccount *keyPair
}

func newPKI(ips []net.IP) (*pki, error) {
	ca, err := newKeyPair(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "taprouter-test-ca"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil)
	if err != nil {
		return nil, err
	}
	serving, err := newKeyPair(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca)
	if err != nil {
		return nil, err
	}
	admin, err := newKeyPair(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca)
	if err != nil {
		return nil, err
	}
	// Only the key matters; the API server reads the private key from a
	// PEM file and ignores the certificate.
	sa, err := newKeyPair(&x509.Certificate{Subject: pkix.Name{CommonName: "service-accounts"}}, ca)
	if err != nil {
		return nil, err
	}
	return &pki{ca: ca, serving: serving, admin: admin, serviceAccount: sa}, nil
}
