package main

import (
	"bytes"
	_ "embed"
	"fmt"
	"text/template"

	"gopkg.in/yaml.v3"

	"github.com/taprouter/taprouter/internal/testbed"
)

// nodeTemplate is the taprouterd configuration the demo gives each node.
//
//go:embed node.yaml.tmpl
var nodeTemplate string

var configTemplate = template.Must(template.New("node.yaml").Parse(nodeTemplate))

// templateData fills nodeTemplate.
type templateData struct {
	Node, PodCIDR, Gateway, Backend, Address string
	Peers                                    []testbed.PeerConfig
	Ports                                    []testbed.PortConfig
}

// renderConfig renders n's configuration for backend and returns the YAML and
// its parsed form for testbed.StartDaemon.
func renderConfig(c *testbed.Cluster, n *testbed.ClusterNode, backend string) ([]byte, testbed.DaemonConfig, error) {
	data := templateData{
		Node:    n.Name,
		PodCIDR: n.Spec.PodCIDR.String(),
		Gateway: n.Spec.Gateway.String(),
		Backend: backend,
		Address: n.Addr.String(),
	}
	for _, peer := range c.Nodes {
		if peer != n {
			data.Peers = append(data.Peers, testbed.PeerConfig{Node: peer.Name, Address: peer.Addr.String(), PodCIDR: peer.Spec.PodCIDR.String()})
		}
	}
	for _, p := range n.Pods {
		data.Ports = append(data.Ports, testbed.PortConfig{Name: p.Spec.Name, Netns: p.Path(), IP: p.Addr().String()})
	}
	var out bytes.Buffer
	if err := configTemplate.Execute(&out, data); err != nil {
		return nil, testbed.DaemonConfig{}, fmt.Errorf("render config for %s: %w", n.Name, err)
	}
	var cfg testbed.DaemonConfig
	if err := yaml.Unmarshal(out.Bytes(), &cfg); err != nil {
		return nil, cfg, fmt.Errorf("rendered config for %s is not valid YAML: %w\n%s", n.Name, err, out.Bytes())
	}
	return out.Bytes(), cfg, nil
}
