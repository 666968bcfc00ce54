package kubecluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// coreDNS is CoreDNS as a Deployment behind the kube-dns Service (what
// kubeadm installs, trimmed): the cluster's names only, no upstream
// (nothing leaves the cluster's namespaces).
var coreDNS = `apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {kind: ServiceAccount, name: coredns, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health {
            lameduck 5s
        }
        ready
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        cache 30
        loop
        reload
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: ` + fmt.Sprint(coreDNSReplicas) + `
  selector:
    matchLabels: {k8s-app: kube-dns}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      tolerations:
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoSchedule}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              topologyKey: kubernetes.io/hostname
              labelSelector:
                matchLabels: {k8s-app: kube-dns}
      containers:
      - name: coredns
        image: ` + CoreDNSImage + `
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {containerPort: 53, name: dns, protocol: UDP}
        - {containerPort: 53, name: dns-tcp, protocol: TCP}
        - {containerPort: 9153, name: metrics, protocol: TCP}
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
          readOnlyRootFilesystem: true
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          initialDelaySeconds: 10
          periodSeconds: 10
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 2
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
      - name: config
        configMap:
          name: coredns
          items: [{key: Corefile, path: Corefile}]
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: ` + DNSServiceIP.String() + `
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
  - {name: metrics, port: 9153, protocol: TCP}
`

// coreDNSReplicas is how many CoreDNS pods run.
const coreDNSReplicas = 2

// waitNodesRegistered waits until every node has registered and has a
// podCIDR from kube-controller-manager's node IPAM.
func (c *Cluster) waitNodesRegistered(ctx context.Context) error {
	return waitFor(ctx, 2*time.Minute, "nodes registered with a podCIDR", func() (bool, string, error) {
		if err := c.checkProcs(); err != nil {
			return false, "", err
		}
		out, err := c.Kubectl(ctx, nil, "get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.spec.podCIDR}{\"\\n\"}{end}")
		if err != nil {
			return false, err.Error(), nil
		}
		cidrs := map[string]string{}
		for _, l := range strings.Fields(out) {
			if name, cidr, _ := strings.Cut(l, "="); name != "" && cidr != "" {
				cidrs[name] = cidr
			}
		}
		if len(cidrs) != len(c.Nodes) {
			return false, out, nil
		}
		for _, n := range c.Nodes {
			if n.PodCIDR = cidrs[n.Name]; n.PodCIDR == "" {
				return false, out, nil
			}
		}
		return true, out, nil
	})
}

// routeControlPlane routes each node's pod range via the node in the
// control plane's namespace. The control plane runs no pods and no CNI, but
// the API server talks to pods directly: its service and pod proxy
// (/api/v1/.../proxy), as on clusters whose control-plane hosts are not
// nodes and reach pods through the underlay (flannel's host-gw routes).
func (c *Cluster) routeControlPlane(ctx context.Context) error {
	for _, n := range c.Nodes {
		if _, err := runHost(ctx, "ip", "-n", c.ControlPlane, "route", "replace", n.PodCIDR, "via", n.Addr.String()); err != nil {
			return err
		}
	}
	return nil
}

// checkProcs returns an error naming the first of the cluster's processes
// (started by this process) that has exited, with its log's tail.
func (c *Cluster) checkProcs() error {
	c.procsMu.Lock()
	defer c.procsMu.Unlock()
	for _, p := range c.procs {
		if exited, err := p.exited(); exited {
			return fmt.Errorf("%s exited: %v\n%s", p.name, err, TailFile(p.log, 30))
		}
	}
	return nil
}

// applyAddons installs CoreDNS.
func (c *Cluster) applyAddons(ctx context.Context) error {
	_, err := c.Kubectl(ctx, []byte(coreDNS), "apply", "-f", "-")
	return err
}

// applyManifests applies Manifests, with Backend set in taprouter's
// ConfigMap.
func (c *Cluster) applyManifests(ctx context.Context) error {
	var files []string
	for _, m := range c.Manifests {
		st, err := os.Stat(m)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			files = append(files, m)
			continue
		}
		yamls, _ := filepath.Glob(filepath.Join(m, "*.yaml"))
		sort.Strings(yamls)
		files = append(files, yamls...)
	}
	var all []byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		all = append(append(all, "\n---\n"...), data...)
	}
	if c.Backend != "" {
		const vxlan = "    backend: vxlan\n"
		if !strings.Contains(string(all), vxlan) {
			return fmt.Errorf("manifests: no %q to set the backend in", strings.TrimSpace(vxlan))
		}
		all = []byte(strings.Replace(string(all), vxlan, "    backend: "+c.Backend+"\n", 1))
	}
	_, err := c.Kubectl(ctx, all, "apply", "-f", "-")
	return err
}

// WaitReady waits until every node is Ready and every kube-system pod
// (taprouter's DaemonSet, CoreDNS) is ready.
func (c *Cluster) WaitReady(ctx context.Context) error {
	return waitFor(ctx, 3*time.Minute, "nodes and kube-system pods ready", func() (bool, string, error) {
		if err := c.checkProcs(); err != nil {
			return false, "", err
		}
		out, err := c.Kubectl(ctx, nil, "get", "nodes,pods", "-n", "kube-system", "-o", "json")
		if err != nil {
			return false, err.Error(), nil
		}
		var list struct {
			Items []struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
				Status struct {
					Phase      string `json:"phase"`
					Conditions []struct {
						Type   string `json:"type"`
						Status string `json:"status"`
					} `json:"conditions"`
					ContainerStatuses []struct {
						Name  string `json:"name"`
						State struct {
							Waiting *struct {
								Reason string `json:"reason"`
							} `json:"waiting"`
						} `json:"state"`
						LastState struct {
							Terminated *struct {
								Message string `json:"message"`
							} `json:"terminated"`
						} `json:"lastState"`
					} `json:"containerStatuses"`
				} `json:"status"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return false, "", err
		}
		var notReady []string
		nodes, pods, dns, network := 0, 0, 0, 0
		for _, it := range list.Items {
			ready := false
			for _, cond := range it.Status.Conditions {
				if cond.Type == "Ready" && cond.Status == "True" {
					ready = true
				}
			}
			switch {
			case it.Kind == "Node":
				nodes++
			case strings.HasPrefix(it.Metadata.Name, "coredns-"):
				dns++
				pods++
			case strings.HasPrefix(it.Metadata.Name, "taprouter-"):
				network++
				pods++
			default:
				pods++
			}
			if !ready {
				why := it.Status.Phase
				for _, cs := range it.Status.ContainerStatuses {
					if cs.State.Waiting != nil {
						why += ", " + cs.Name + ": " + cs.State.Waiting.Reason
					}
					if t := cs.LastState.Terminated; t != nil && t.Message != "" {
						why += ", last exit: " + lastLine(t.Message)
					}
				}
				notReady = append(notReady, it.Kind+"/"+it.Metadata.Name+"("+why+")")
			}
		}
		// Exactly: every node, CoreDNS's replicas and one taprouter pod per
		// node (a pod being replaced would be one too many).
		ok := nodes == len(c.Nodes) && dns == coreDNSReplicas && network == len(c.Nodes) && len(notReady) == 0
		return ok, fmt.Sprintf("%d nodes, %d kube-system pods (%d CoreDNS, %d taprouter), not ready: %v", nodes, pods, dns, network, notReady), nil
	})
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
