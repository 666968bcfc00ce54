package deploy_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/taprouter/taprouter/internal/k8stest"
)

// applied is kubectl apply's line for each object of deploy/, in order,
// with what happened to it: "created (server dry run)", "unchanged".
func applied(t *testing.T, what string) string {
	var lines []string
	for _, m := range manifests(t) {
		lines = append(lines, m.resource()+" "+what+"\n")
	}
	return strings.Join(lines, "")
}

// Every manifest passes the real API server's validation and admission
// (the Priority plugin takes system-node-critical, the PodSecurity plugin
// the pod) in a server-side dry run on a fresh cluster, which persists
// nothing; a real apply creates each object, a second one changes none,
// and kubectl delete -f deploy/ removes exactly those objects.
func TestManifestsApplyK8s(t *testing.T) {
	c := k8stest.Start(t)
	if got, want := c.Kubectl(t, "", "apply", "--dry-run=server", "-f", "."), applied(t, "created (server dry run)"); got != want {
		t.Errorf("kubectl apply --dry-run=server -f deploy/:\n%s\nwant\n%s", got, want)
	}
	if got := c.Kubectl(t, "", "get", "-n", Namespace, "ds,cm,sa", "-l", "app.kubernetes.io/name=taprouter", "-o", "name"); got != "" {
		t.Errorf("after the dry run, kube-system holds %q; want nothing of taprouter's", got)
	}
	if got, want := c.Kubectl(t, "", "apply", "-f", "."), applied(t, "created"); got != want {
		t.Errorf("kubectl apply -f deploy/:\n%s\nwant\n%s", got, want)
	}
	if got, want := c.Kubectl(t, "", "apply", "-f", "."), applied(t, "unchanged"); got != want {
		t.Errorf("second kubectl apply -f deploy/:\n%s\nwant\n%s", got, want)
	}
	// The server's copy of the DaemonSet is the file's: what the static
	// tests check is what the cluster runs.
	got := c.Kubectl(t, "", "get", "-n", Namespace, "ds", "taprouter", "-o",
		`jsonpath={.spec.template.spec.hostNetwork} {.spec.template.spec.priorityClassName} {.spec.template.spec.containers[0].securityContext.capabilities.add} {.spec.template.spec.containers[0].securityContext.privileged}`)
	if want := `true system-node-critical ["NET_ADMIN","NET_RAW","SYS_ADMIN"] false`; got != want {
		t.Errorf("the DaemonSet as stored: %q, want %q", got, want)
	}
	// kubectl delete -f deploy/ removes exactly taprouter's objects.
	var deleted []string
	for _, m := range manifests(t) {
		kind, name, _ := strings.Cut(m.resource(), "/")
		line := kind + ` "` + name + `" deleted`
		if m.Namespace != "" {
			line += " from " + m.Namespace + " namespace"
		}
		deleted = append(deleted, line+"\n")
	}
	if got, want := c.Kubectl(t, "", "delete", "-f", "."), strings.Join(deleted, ""); got != want {
		t.Errorf("kubectl delete -f deploy/:\n%s\nwant\n%s", got, want)
	}
	if got := c.Kubectl(t, "", "get", "-A", "ds,cm,sa,clusterrole,clusterrolebinding", "-l", "app.kubernetes.io/name=taprouter", "-o", "name"); got != "" {
		t.Errorf("after kubectl delete -f deploy/, the cluster holds %q", got)
	}
	if got := c.Kubectl(t, "", "get", "namespace", Namespace, "-o", "name"); got != "namespace/"+Namespace+"\n" {
		t.Errorf("kubectl get namespace %s: %q", Namespace, got)
	}
}

// canIer returns a function that runs kubectl auth can-i as the
// DaemonSet's ServiceAccount and returns its answer and exit status (0 yes,
// 1 no). Cluster.Kubectl fails the test on a non-zero exit, so it runs
// kubectl through a wrapper that prints the status and exits 0.
func canIer(t *testing.T, c *k8stest.Cluster) func(args ...string) (string, int) {
	dir := t.TempDir()
	script := "#!/bin/sh\n" + filepath.Join(c.BinDir, "kubectl") + " \"$@\"\necho \"exit $?\"\n"
	if err := os.WriteFile(filepath.Join(dir, "kubectl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapped := *c
	wrapped.BinDir = dir
	return func(args ...string) (string, int) {
		t.Helper()
		out := wrapped.Kubectl(t, "", append([]string{"auth", "can-i", "--as=system:serviceaccount:" + Namespace + ":" + ServiceAccount}, args...)...)
		answer, status, ok := strings.Cut(out, "exit ")
		code, err := strconv.Atoi(strings.TrimSpace(status))
		if !ok || err != nil {
			t.Fatalf("kubectl auth can-i %s: %q", strings.Join(args, " "), out)
		}
		return answer, code
	}
}

// The ServiceAccount may do what taprouterd needs (get, list, watch and
// patch nodes) and nothing more: not delete, create or update nodes, not
// touch their status, not read secrets, not create or read pods. Before the
// RBAC objects are applied it may do none of it.
func TestRBACK8s(t *testing.T) {
	c := k8stest.Start(t)
	canI := canIer(t, c)
	yes := [][]string{
		{"get", "nodes"}, {"list", "nodes"}, {"watch", "nodes"}, {"patch", "nodes"},
		{"get", "nodes/node-1"}, {"patch", "nodes/node-1"},
	}
	no := [][]string{
		{"delete", "nodes"}, {"create", "nodes"}, {"update", "nodes"}, {"deletecollection", "nodes"},
		{"patch", "nodes", "--subresource=status"},
		{"get", "secrets", "-n", Namespace}, {"list", "secrets", "-n", Namespace},
		{"get", "secrets", "--all-namespaces"}, {"list", "secrets", "--all-namespaces"}, {"watch", "secrets", "--all-namespaces"},
		{"create", "pods", "-n", Namespace}, {"create", "pods", "-n", "default"}, {"get", "pods", "--all-namespaces"},
		{"create", "events", "-n", Namespace}, {"patch", "configmaps", "-n", Namespace},
		{"create", "clusterrolebindings"}, {"escalate", "clusterroles"}, {"impersonate", "serviceaccounts"},
	}
	for _, args := range yes {
		if answer, code := canI(args...); answer != "no\n" || code != 1 {
			t.Errorf("before the RBAC objects, can-i %s: %q exit %d, want \"no\" exit 1", strings.Join(args, " "), answer, code)
		}
	}
	for _, f := range []string{"01-serviceaccount.yaml", "02-clusterrole.yaml", "03-clusterrolebinding.yaml"} {
		c.Kubectl(t, "", "apply", "-f", f)
	}
	for _, args := range yes {
		if answer, code := canI(args...); answer != "yes\n" || code != 0 {
			t.Errorf("can-i %s: %q exit %d, want \"yes\" exit 0", strings.Join(args, " "), answer, code)
		}
	}
	for _, args := range no {
		if answer, code := canI(args...); answer != "no\n" || code != 1 {
			t.Errorf("can-i %s: %q exit %d, want \"no\" exit 1", strings.Join(args, " "), answer, code)
		}
	}
}
