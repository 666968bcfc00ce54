package kube

import (
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// NodeName returns the name of this node's Node object: flag if set, else
// $NODE_NAME (what a DaemonSet sets from spec.nodeName), else the hostname
// lowercased, as the kubelet registers it. It returns "" only when all
// three are empty or unreadable.
func NodeName(flag string) string {
	if flag != "" {
		return flag
	}
	if n := os.Getenv("NODE_NAME"); n != "" {
		return n
	}
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(h))
}

// RESTConfig returns the client configuration from the kubeconfig file at
// path, or, when path is "", the in-cluster configuration of a pod's
// service account.
func RESTConfig(path string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if path != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", path)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		if path == "" {
			return nil, fmt.Errorf("kube: in-cluster config (no --kubeconfig given): %w", err)
		}
		return nil, fmt.Errorf("kube: kubeconfig %s: %w", path, err)
	}
	cfg.UserAgent = "taprouterd"
	return cfg, nil
}

// NewClientset returns a clientset for cfg. cfg.Timeout must stay zero: it
// bounds whole requests, and so would cut the informer's watch.
func NewClientset(cfg *rest.Config) (kubernetes.Interface, error) {
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: clientset: %w", err)
	}
	return c, nil
}
