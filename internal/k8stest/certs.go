package k8stest

import (
	"net"

	"github.com/taprouter/taprouter/internal/kubepki"
)

// pki is what the API server and its clients need: a CA, the API server's
// serving certificate (for ips and the in-cluster names of the kubernetes
// Service), an admin client certificate (group system:masters, which RBAC
// lets do everything) and the key that signs service account tokens.
type pki struct {
	ca, serving, admin, serviceAccount *kubepki.KeyPair
}

// apiServerNames are the names of the kubernetes Service.
var apiServerNames = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}

func newPKI(ips []net.IP) (*pki, error) {
	ca, err := kubepki.NewCA("taprouter-test-ca")
	if err != nil {
		return nil, err
	}
	p := &pki{ca: ca}
	if p.serving, err = ca.Serving("kube-apiserver", apiServerNames, ips); err != nil {
		return nil, err
	}
	if p.admin, err = ca.Client("admin", "system:masters"); err != nil {
		return nil, err
	}
	if p.serviceAccount, err = ca.Key("service-accounts"); err != nil {
		return nil, err
	}
	return p, nil
}
