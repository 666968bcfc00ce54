// Package kubepki makes the certificates and kubeconfigs of a throwaway
// Kubernetes control plane for tests: a CA, serving and client
// certificates signed by it (P-256, valid for a week), and kubeconfig files
// that embed them. Kubernetes authenticates a client certificate as the user
// of its common name in the groups of its organizations (system:masters is
// allowed everything, system:node:<name> in system:nodes is a kubelet).
//
// It is crypto/x509 and nothing else: test clusters need no cfssl or
// kubeadm, and every key stays in memory until a caller writes it.
package kubepki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Validity is how long every certificate is valid (from an hour ago, for
// clocks that differ a little).
const Validity = 7 * 24 * time.Hour

// KeyPair is a certificate and its private key, both PEM-encoded.
type KeyPair struct {
	CertPEM, KeyPEM []byte
	Cert            *x509.Certificate
	priv            *ecdsa.PrivateKey
}

// NewCA makes a self-signed certificate authority named cn.
func NewCA(cn string) (*KeyPair, error) {
	return newKeyPair(&x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil)
}

// Serving issues a TLS server certificate for the names and addresses.
func (ca *KeyPair) Serving(cn string, names []string, ips []net.IP) (*KeyPair, error) {
	return newKeyPair(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    names,
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca)
}

// Client issues a client certificate for user in groups.
func (ca *KeyPair) Client(user string, groups ...string) (*KeyPair, error) {
	return newKeyPair(&x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca)
}

// Key makes a key pair whose certificate does not matter, only the key:
// the service-account signing key, which the API server reads from a PEM
// file of the private key.
func (ca *KeyPair) Key(cn string) (*KeyPair, error) {
	return newKeyPair(&x509.Certificate{Subject: pkix.Name{CommonName: cn}}, ca)
}

// newKeyPair makes a P-256 key and a certificate for it from tmpl, signed by
// ca, or self-signed when ca is nil.
func newKeyPair(tmpl *x509.Certificate, ca *KeyPair) (*KeyPair, error) {
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
	tmpl.NotAfter = time.Now().Add(Validity)
	parent, signer := tmpl, priv
	if ca != nil {
		parent, signer = ca.Cert, ca.priv
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &priv.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("kubepki: certificate %q: %w", tmpl.Subject.CommonName, err)
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
	return &KeyPair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		Cert:    parsed,
		priv:    priv,
	}, nil
}

// Kubeconfig is a kubeconfig for user at server, trusting caPEM, whose
// credentials are the given user fields, each indented by four spaces, e.g.
// "    token: ...\n".
func Kubeconfig(server string, caPEM []byte, user, credentials string) []byte {
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
%scontexts:
- name: test
  context:
    cluster: test
    user: %s
current-context: test
`, server, base64.StdEncoding.EncodeToString(caPEM), user, credentials, user)
}

// CertKubeconfig is a kubeconfig that authenticates with the client
// certificate kp (embedded).
func CertKubeconfig(server string, caPEM []byte, user string, kp *KeyPair) []byte {
	b64 := base64.StdEncoding.EncodeToString
	return Kubeconfig(server, caPEM, user, fmt.Sprintf("    client-certificate-data: %s\n    client-key-data: %s\n", b64(kp.CertPEM), b64(kp.KeyPEM)))
}
