package deploy_test

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
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

// canI runs kubectl auth can-i as the DaemonSet's ServiceAccount and
// returns its answer and exit status (0 yes, 1 no).
func canI(t *testing.T, c *k8stest.Cluster, args ...string) (string, int) {
	t.Helper()
	cmd := c.NS.Command(filepath.Join(c.BinDir, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig, "auth", "can-i",
		"--as=system:serviceaccount:" + Namespace + ":" + ServiceAccount}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), 0
	case errors.As(err, &exit):
		return stdout.String(), exit.ExitCode()
	}
	t.Fatalf("kubectl auth can-i %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	return "", 0
}

// The ServiceAccount may do what taprouterd needs (get, list, watch and
// patch nodes) and nothing more: not delete, create or update nodes, not
// touch their status, not read secrets, not create or read pods. Before the
// RBAC objects are applied it may do none of it.
func TestRBACK8s(t *testing.T) {
	c := k8stest.Start(t)
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
		if answer, code := canI(t, c, args...); answer != "no\n" || code != 1 {
			t.Errorf("before the RBAC objects, can-i %s: %q exit %d, want \"no\" exit 1", strings.Join(args, " "), answer, code)
		}
	}
	for _, f := range []string{"01-serviceaccount.yaml", "02-clusterrole.yaml", "03-clusterrolebinding.yaml"} {
		c.Kubectl(t, "", "apply", "-f", f)
	}
	for _, args := range yes {
		if answer, code := canI(t, c, args...); answer != "yes\n" || code != 0 {
			t.Errorf("can-i %s: %q exit %d, want \"yes\" exit 0", strings.Join(args, " "), answer, code)
		}
	}
	for _, args := range no {
		if answer, code := canI(t, c, args...); answer != "no\n" || code != 1 {
			t.Errorf("can-i %s: %q exit %d, want \"no\" exit 1", strings.Join(args, " "), answer, code)
		}
	}
}
