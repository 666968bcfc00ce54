package deploy_test

import (
	"encoding/json"
	"net/netip"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/taprouter/taprouter/config"
)

// The parts of a DaemonSet the tests check, with the field names of
// k8s.io/api/apps/v1 and core/v1.
type daemonSet struct {
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		UpdateStrategy struct {
			Type          string `yaml:"type"`
			RollingUpdate struct {
				MaxUnavailable any `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"updateStrategy"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	ServiceAccountName            string            `yaml:"serviceAccountName"`
	PriorityClassName             string            `yaml:"priorityClassName"`
	HostNetwork                   bool              `yaml:"hostNetwork"`
	HostPID                       bool              `yaml:"hostPID"`
	HostIPC                       bool              `yaml:"hostIPC"`
	NodeSelector                  map[string]string `yaml:"nodeSelector"`
	TerminationGracePeriodSeconds *int              `yaml:"terminationGracePeriodSeconds"`
	Tolerations                   []struct {
		Key, Operator, Value, Effect string
	} `yaml:"tolerations"`
	InitContainers []container `yaml:"initContainers"`
	Containers     []container `yaml:"containers"`
	Volumes        []struct {
		Name     string `yaml:"name"`
		HostPath *struct {
			Path string `yaml:"path"`
			Type string `yaml:"type"`
		} `yaml:"hostPath"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			ConfigMapKeyRef *struct {
				Name, Key string
			} `yaml:"configMapKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	SecurityContext *struct {
		Privileged               *bool `yaml:"privileged"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		RunAsUser                *int  `yaml:"runAsUser"`
		Capabilities             struct {
			Add  []string `yaml:"add"`
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	StartupProbe   *probe `yaml:"startupProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name             string `yaml:"name"`
		MountPath        string `yaml:"mountPath"`
		ReadOnly         bool   `yaml:"readOnly"`
		MountPropagation string `yaml:"mountPropagation"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
	HTTPGet          any `yaml:"httpGet"`
	TCPSocket        any `yaml:"tcpSocket"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	TimeoutSeconds   int `yaml:"timeoutSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

// flag returns the value of --name=value in args, and whether it is there.
func flag(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// hostPathOf returns the node path that mountPath of c is (a hostPath
// volume), or "".
func hostPathOf(ps podSpec, c container, mountPath string) string {
	for _, m := range c.VolumeMounts {
		if m.MountPath != mountPath {
			continue
		}
		for _, v := range ps.Volumes {
			if v.Name == m.Name && v.HostPath != nil {
				return v.HostPath.Path
			}
		}
	}
	return ""
}

// hostFile returns the node path of the file at p inside c, through the
// hostPath mount that holds it.
func hostFile(ps podSpec, c container, p string) string {
	for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
		if h := hostPathOf(ps, c, dir); h != "" {
			return path.Join(h, strings.TrimPrefix(p, dir))
		}
	}
	return ""
}

func loadDaemonSet(t *testing.T) (daemonSet, podSpec, container, container) {
	t.Helper()
	var ds daemonSet
	find(t, manifests(t), "DaemonSet").decode(t, &ds)
	ps := ds.Spec.Template.Spec
	if len(ps.Containers) != 1 || len(ps.InitContainers) != 1 {
		t.Fatalf("%d containers, %d init containers; want 1 and 1", len(ps.Containers), len(ps.InitContainers))
	}
	return ds, ps, ps.Containers[0], ps.InitContainers[0]
}

// The pod: the node's network namespace and nothing else of the node's
// (no hostPID, no hostIPC), every node whatever its taints, the critical
// priority, one node at a time, the RBAC's ServiceAccount, and NODE_NAME
// from spec.nodeName.
func TestDaemonSetPod(t *testing.T) {
	ds, ps, d, _ := loadDaemonSet(t)
	if !ps.HostNetwork || ps.HostPID || ps.HostIPC {
		t.Errorf("hostNetwork %v, hostPID %v, hostIPC %v; want true, false, false", ps.HostNetwork, ps.HostPID, ps.HostIPC)
	}
	if ps.ServiceAccountName != ServiceAccount || ps.PriorityClassName != "system-node-critical" {
		t.Errorf("serviceAccountName %q, priorityClassName %q", ps.ServiceAccountName, ps.PriorityClassName)
	}
	// One toleration with operator Exists and no key or effect tolerates
	// every taint: NoSchedule on control-plane nodes, not-ready and
	// unreachable (NoSchedule and NoExecute).
	if len(ps.Tolerations) != 1 || ps.Tolerations[0] != (struct{ Key, Operator, Value, Effect string }{Operator: "Exists"}) {
		t.Errorf("tolerations %+v, want [{operator: Exists}]", ps.Tolerations)
	}
	if u := ds.Spec.UpdateStrategy; u.Type != "RollingUpdate" || u.RollingUpdate.MaxUnavailable != 1 {
		t.Errorf("updateStrategy %+v, want RollingUpdate, maxUnavailable 1", u)
	}
	if g := ps.TerminationGracePeriodSeconds; g == nil || *g != 15 {
		t.Errorf("terminationGracePeriodSeconds %v, want 15", g)
	}
	if ps.NodeSelector["kubernetes.io/os"] != "linux" || len(ps.NodeSelector) != 1 {
		t.Errorf("nodeSelector %v, want kubernetes.io/os: linux", ps.NodeSelector)
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the template's labels %v", k, v, ds.Spec.Template.Metadata.Labels)
		}
	}
	var env []string
	for _, e := range d.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			env = append(env, e.Name+" fieldRef "+e.ValueFrom.FieldRef.FieldPath)
		case e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil:
			env = append(env, e.Name+" configMap "+e.ValueFrom.ConfigMapKeyRef.Name+"/"+e.ValueFrom.ConfigMapKeyRef.Key)
		default:
			env = append(env, e.Name+"="+e.Value)
		}
	}
	if want := []string{"NODE_NAME fieldRef spec.nodeName", "CLUSTER_CIDR configMap taprouter/cluster-cidr"}; !slices.Equal(env, want) {
		t.Errorf("env %q, want %q", env, want)
	}
	if v, ok := flag(d.Args, "cluster-cidr"); !ok || v != "$(CLUSTER_CIDR)" || !slices.Contains(d.Args, "--masquerade") {
		t.Errorf("args %q: want --masquerade and --cluster-cidr=$(CLUSTER_CIDR)", d.Args)
	}
	// Both containers run the one image, a taprouter/taprouter tag.
	for _, c := range append(ps.InitContainers, ps.Containers...) {
		if !strings.HasPrefix(c.Image, "taprouter/taprouter:") || c.Image != d.Image {
			t.Errorf("%s: image %q, want the same taprouter/taprouter:<version> in both containers", c.Name, c.Image)
		}
	}
	if r := d.Resources; r.Requests["cpu"] == "" || r.Requests["memory"] == "" || len(r.Limits) != 0 {
		t.Errorf("taprouterd resources %+v, want cpu and memory requests and no limits", r)
	}
}

// Not privileged: root with every capability dropped but NET_ADMIN,
// NET_RAW and SYS_ADMIN in taprouterd (each with a comment saying why),
// none at all in the init container; no privilege escalation, a read-only
// root file system, the runtime's seccomp profile.
func TestDaemonSetPrivileges(t *testing.T) {
	_, _, d, initc := loadDaemonSet(t)
	for _, tc := range []struct {
		c    container
		caps []string
	}{{d, []string{"NET_ADMIN", "NET_RAW", "SYS_ADMIN"}}, {initc, nil}} {
		sc := tc.c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", tc.c.Name)
			continue
		}
		if sc.Privileged == nil || *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.RunAsUser == nil || *sc.RunAsUser != 0 {
			t.Errorf("%s: privileged %v, allowPrivilegeEscalation %v, readOnlyRootFilesystem %v, runAsUser %v; want false, false, true, 0",
				tc.c.Name, sc.Privileged, sc.AllowPrivilegeEscalation, sc.ReadOnlyRootFilesystem, sc.RunAsUser)
		}
		if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || !slices.Equal(sc.Capabilities.Add, tc.caps) {
			t.Errorf("%s: capabilities drop %q add %q; want drop [ALL] add %q", tc.c.Name, sc.Capabilities.Drop, sc.Capabilities.Add, tc.caps)
		}
		if sc.SeccompProfile.Type != "RuntimeDefault" {
			t.Errorf("%s: seccompProfile %q, want RuntimeDefault", tc.c.Name, sc.SeccompProfile.Type)
		}
	}
	// Each added capability carries a comment saying what it is for.
	b, err := os.ReadFile("05-daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	add := lookup(&doc, "spec", "template", "spec", "containers", "0", "securityContext", "capabilities", "add")
	if add == nil {
		t.Fatal("no capabilities.add in taprouterd's securityContext")
	}
	for _, c := range add.Content {
		if len(strings.Fields(c.HeadComment)) < 5 {
			t.Errorf("capability %s: comment %q; want one that says why", c.Value, c.HeadComment)
		}
	}
}

// lookup follows keys (and list indexes) from the document node n.
func lookup(n *yaml.Node, keys ...string) *yaml.Node {
	if n.Kind == yaml.DocumentNode {
		n = n.Content[0]
	}
	for _, k := range keys {
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					next = n.Content[i+1]
				}
			}
			if next == nil {
				return nil
			}
			n = next
		case yaml.SequenceNode:
			i := int(k[0] - '0')
			if len(k) != 1 || i >= len(n.Content) {
				return nil
			}
			n = n.Content[i]
		default:
			return nil
		}
	}
	return n
}

// The node paths each container mounts: exactly what taprouterd and the
// installer need, the pods' namespaces with HostToContainer propagation,
// /dev/net/tun as a character device.
func TestDaemonSetVolumes(t *testing.T) {
	_, ps, d, initc := loadDaemonSet(t)
	volumes := map[string]string{}
	for _, v := range ps.Volumes {
		switch {
		case v.HostPath != nil:
			volumes[v.Name] = "hostPath " + v.HostPath.Path + " " + v.HostPath.Type
		case v.ConfigMap != nil:
			volumes[v.Name] = "configMap " + v.ConfigMap.Name
		default:
			volumes[v.Name] = "other"
		}
	}
	mounts := func(c container) []string {
		var out []string
		for _, m := range c.VolumeMounts {
			s := m.MountPath + " <- " + volumes[m.Name]
			if m.ReadOnly {
				s += " ro"
			}
			if m.MountPropagation != "" {
				s += " " + m.MountPropagation
			}
			out = append(out, s)
		}
		return out
	}
	wantD := []string{
		"/run/taprouter <- hostPath /run/taprouter DirectoryOrCreate",
		"/var/lib/taprouter <- hostPath /var/lib/taprouter DirectoryOrCreate",
		"/etc/taprouter <- configMap taprouter ro",
		"/run/netns <- hostPath /run/netns DirectoryOrCreate ro HostToContainer",
		"/var/run/netns <- hostPath /var/run/netns DirectoryOrCreate ro HostToContainer",
		"/dev/net/tun <- hostPath /dev/net/tun CharDevice",
		"/run/xtables.lock <- hostPath /run/xtables.lock FileOrCreate",
	}
	if got := mounts(d); !slices.Equal(got, wantD) {
		t.Errorf("taprouterd mounts\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantD, "\n"))
	}
	wantInit := []string{
		"/host/opt/cni/bin <- hostPath /opt/cni/bin DirectoryOrCreate",
		"/host/etc/cni/net.d <- hostPath /etc/cni/net.d DirectoryOrCreate",
		"/etc/taprouter <- configMap taprouter ro",
	}
	if got := mounts(initc); !slices.Equal(got, wantInit) {
		t.Errorf("install-cni mounts\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantInit, "\n"))
	}
	if len(volumes) != 9 {
		t.Errorf("%d volumes %v, want the 9 mounted", len(volumes), volumes)
	}
}

// The init container runs taprouterd install-cni (plugins first, the
// conflist last, each renamed into place: TestInstallCNIConfigLast in
// cmd/taprouterd) from the image to the node's /opt/cni/bin and
// /etc/cni/net.d, with the ConfigMap's conflist; the conflist's socket is
// the one taprouterd listens on, in the node's /run/taprouter.
func TestDaemonSetInstallsCNI(t *testing.T) {
	_, ps, d, initc := loadDaemonSet(t)
	if len(initc.Command) < 2 || initc.Command[0] != "/usr/local/bin/taprouterd" || initc.Command[1] != "install-cni" {
		t.Fatalf("init container command %q, want taprouterd install-cni", initc.Command)
	}
	args := initc.Command[2:]
	for name, want := range map[string]string{
		"from":     "/usr/lib/taprouter/cni",
		"plugins":  "taprouter,host-local,portmap",
		"conflist": "/etc/taprouter/10-taprouter.conflist",
	} {
		if v, _ := flag(args, name); v != want {
			t.Errorf("install-cni --%s=%q, want %q", name, v, want)
		}
	}
	for name, want := range map[string]string{"bin-dir": "/opt/cni/bin", "net-dir": "/etc/cni/net.d"} {
		v, _ := flag(args, name)
		if h := hostPathOf(ps, initc, v); h != want {
			t.Errorf("install-cni --%s=%s is the node's %q, want %q", name, v, h, want)
		}
	}
	socket, ok := flag(d.Args, "socket")
	if !ok {
		t.Fatalf("taprouterd args %q: no --socket", d.Args)
	}
	if h := hostFile(ps, d, socket); h != "/run/taprouter/taprouterd.sock" {
		t.Errorf("taprouterd --socket=%s is the node's %q, want /run/taprouter/taprouterd.sock", socket, h)
	}
	var list struct {
		Plugins []struct {
			Type   string `json:"type"`
			Socket string `json:"socket"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(configMapData(t)["10-taprouter.conflist"], &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Plugins) == 0 || list.Plugins[0].Type != "taprouter" || list.Plugins[0].Socket != "/run/taprouter/taprouterd.sock" {
		t.Errorf("the conflist's first plugin %+v, want taprouter with socket /run/taprouter/taprouterd.sock", list.Plugins)
	}
	if state, _ := flag(d.Args, "state-dir"); hostPathOf(ps, d, state) != "/var/lib/taprouter" {
		t.Errorf("taprouterd --state-dir=%s is not the node's /var/lib/taprouter", state)
	}
	if conf, _ := flag(d.Args, "config"); conf != "/etc/taprouter/taprouterd.yaml" {
		t.Errorf("taprouterd --config=%s, want /etc/taprouter/taprouterd.yaml (the ConfigMap's taprouterd.yaml)", conf)
	}
}

// The probes are exec probes of taprouterd ready on the daemon's socket:
// readiness without --live (ready means forwarding), startup and liveness
// with it (alive means answering).
func TestDaemonSetProbes(t *testing.T) {
	_, _, d, _ := loadDaemonSet(t)
	socket, _ := flag(d.Args, "socket")
	for _, tc := range []struct {
		name string
		p    *probe
		want []string
	}{
		{"readinessProbe", d.ReadinessProbe, []string{"/usr/local/bin/taprouterd", "ready", "--socket=" + socket}},
		{"startupProbe", d.StartupProbe, []string{"/usr/local/bin/taprouterd", "ready", "--live", "--socket=" + socket}},
		{"livenessProbe", d.LivenessProbe, []string{"/usr/local/bin/taprouterd", "ready", "--live", "--socket=" + socket}},
	} {
		if tc.p == nil || tc.p.Exec == nil {
			t.Errorf("%s: %+v, want an exec probe", tc.name, tc.p)
			continue
		}
		if !slices.Equal(tc.p.Exec.Command, tc.want) || tc.p.HTTPGet != nil || tc.p.TCPSocket != nil {
			t.Errorf("%s: command %q, want %q", tc.name, tc.p.Exec.Command, tc.want)
		}
		// taprouterd ready waits 2 s for the answer by default: the probe
		// must not time out first.
		if tc.p.TimeoutSeconds <= 2 || tc.p.PeriodSeconds < tc.p.TimeoutSeconds {
			t.Errorf("%s: timeoutSeconds %d, periodSeconds %d; want a timeout over 2 s and a period no shorter", tc.name, tc.p.TimeoutSeconds, tc.p.PeriodSeconds)
		}
	}
}

// configMapData is the ConfigMap's data.
func configMapData(t *testing.T) map[string][]byte {
	t.Helper()
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	find(t, manifests(t), "ConfigMap").decode(t, &cm)
	out := map[string][]byte{}
	for k, v := range cm.Data {
		out[k] = []byte(v)
	}
	return out
}

// The ConfigMap's conflist is deploy/10-taprouter.conflist byte for byte,
// and its keys are exactly what the DaemonSet uses.
func TestConfigMapConflist(t *testing.T) {
	file, err := os.ReadFile("10-taprouter.conflist")
	if err != nil {
		t.Fatal(err)
	}
	data := configMapData(t)
	if got := string(data["10-taprouter.conflist"]); got != string(file) {
		t.Errorf("ConfigMap 10-taprouter.conflist:\n%s\nwant deploy/10-taprouter.conflist:\n%s", got, file)
	}
	var keys []string
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"10-taprouter.conflist", "cluster-cidr", "taprouterd.yaml"}; !slices.Equal(keys, want) {
		t.Errorf("ConfigMap keys %q, want %q", keys, want)
	}
	// taprouterd reads it with config.ParseForNode: valid for any Node.
	facts := config.NodeFacts{Node: "node-a", PodCIDR: netip.MustParsePrefix("10.244.7.0/24"),
		UnderlayAddress: netip.MustParseAddr("192.168.49.7"), UnderlayInterface: "eth0"}
	cfg, err := config.ParseForNode(data["taprouterd.yaml"], facts)
	if err != nil {
		t.Fatalf("taprouterd.yaml: %v", err)
	}
	if cfg.Backend != "vxlan" || cfg.VXLAN.VNI != 1 || cfg.VXLAN.Port != 8472 || cfg.Gateway != netip.MustParseAddr("10.244.7.1") {
		t.Errorf("taprouterd.yaml gives backend %s, VNI %d, port %d, gateway %s; want vxlan, 1, 8472 and the range's .1",
			cfg.Backend, cfg.VXLAN.VNI, cfg.VXLAN.Port, cfg.Gateway)
	}
}
