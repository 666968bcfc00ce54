package kubepki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
)

// TestChain checks that what the CA issues verifies against it for its
// purpose and names, and not for another.
func TestChain(t *testing.T) {
	ca, err := NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv, err := ca.Serving("kube-apiserver", []string{"kubernetes"}, []net.IP{net.IPv4(192, 0, 2, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "192.0.2.1"}); err != nil {
		t.Errorf("serving certificate for 192.0.2.1: %v", err)
	}
	if _, err := srv.Cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "192.0.2.2"}); err == nil {
		t.Error("serving certificate verified for 192.0.2.2, which it does not name")
	}
	cl, err := ca.Client("system:node:node1", "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if _, err := cl.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client certificate verified as a server's")
	}
	if got := cl.Cert.Subject.CommonName + "/" + strings.Join(cl.Cert.Subject.Organization, ","); got != "system:node:node1/system:nodes" {
		t.Errorf("subject %q", got)
	}
	if _, err := tls.X509KeyPair(cl.CertPEM, cl.KeyPEM); err != nil {
		t.Errorf("PEM pair: %v", err)
	}
	other, _ := NewCA("other-ca")
	pool2 := x509.NewCertPool()
	pool2.AddCert(other.Cert)
	if _, err := cl.Cert.Verify(x509.VerifyOptions{Roots: pool2, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("client certificate verified against another CA")
	}
}

func TestKubeconfig(t *testing.T) {
	got := string(Kubeconfig("https://192.0.2.1:6443", []byte("CA"), "u", "    token: abc\n"))
	for _, want := range []string{"server: https://192.0.2.1:6443\n", "certificate-authority-data: Q0E=\n", "- name: u\n  user:\n    token: abc\ncontexts:", "current-context: test\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("kubeconfig lacks %q:\n%s", want, got)
		}
	}
}
