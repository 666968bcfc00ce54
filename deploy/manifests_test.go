package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// manifest is one object of a deploy/*.yaml file.
type manifest struct {
	File       string
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	node       *yaml.Node
}

// decode decodes the object into v.
func (m manifest) decode(t *testing.T, v any) {
	t.Helper()
	if err := m.node.Decode(v); err != nil {
		t.Fatalf("%s: %s %s: %v", m.File, m.Kind, m.Name, err)
	}
}

// resource is how kubectl names the object in its output:
// daemonset.apps/taprouter, serviceaccount/taprouter.
func (m manifest) resource() string {
	kind := strings.ToLower(m.Kind)
	if group, _, ok := strings.Cut(m.APIVersion, "/"); ok {
		kind += "." + group
	}
	return kind + "/" + m.Name
}

// manifests reads every object of deploy/*.yaml (the files `kubectl apply
// -f deploy/` takes, in its order: by name).
func manifests(t *testing.T) []manifest {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	var out []manifest
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc yaml.Node
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			var meta struct {
				APIVersion string `yaml:"apiVersion"`
				Kind       string `yaml:"kind"`
				Metadata   struct {
					Name      string `yaml:"name"`
					Namespace string `yaml:"namespace"`
				} `yaml:"metadata"`
			}
			if err := doc.Decode(&meta); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, manifest{File: f, APIVersion: meta.APIVersion, Kind: meta.Kind,
				Name: meta.Metadata.Name, Namespace: meta.Metadata.Namespace, node: &doc})
		}
	}
	return out
}

// find returns the one object of kind; it fails t unless there is exactly one.
func find(t *testing.T, ms []manifest, kind string) manifest {
	t.Helper()
	var found []manifest
	for _, m := range ms {
		if m.Kind == kind {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d objects of kind %s in deploy/, want 1", len(found), kind)
	}
	return found[0]
}

// Namespace is where the namespaced objects live; see 01-serviceaccount.yaml.
const (
	Namespace      = "kube-system"
	ServiceAccount = "taprouter"
)

// The objects, one concern per file, in the order kubectl applies them;
// every namespaced one in kube-system.
func TestManifestList(t *testing.T) {
	var got []string
	for _, m := range manifests(t) {
		got = append(got, fmt.Sprintf("%s: %s %s %s/%s", m.File, m.APIVersion, m.Kind, m.Namespace, m.Name))
	}
	want := []string{
		"01-serviceaccount.yaml: v1 ServiceAccount kube-system/taprouter",
		"02-clusterrole.yaml: rbac.authorization.k8s.io/v1 ClusterRole /taprouter",
		"03-clusterrolebinding.yaml: rbac.authorization.k8s.io/v1 ClusterRoleBinding /taprouter",
		"04-configmap.yaml: v1 ConfigMap kube-system/taprouter",
		"05-daemonset.yaml: apps/v1 DaemonSet kube-system/taprouter",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("deploy/ holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The ClusterRole grants get, list, watch and patch on nodes and nothing
// else; the binding gives it to the DaemonSet's ServiceAccount alone.
func TestRBACStatic(t *testing.T) {
	ms := manifests(t)
	var role struct {
		Rules []struct {
			APIGroups       []string `yaml:"apiGroups"`
			Resources       []string `yaml:"resources"`
			Verbs           []string `yaml:"verbs"`
			ResourceNames   []string `yaml:"resourceNames"`
			NonResourceURLs []string `yaml:"nonResourceURLs"`
		} `yaml:"rules"`
		AggregationRule any `yaml:"aggregationRule"`
	}
	find(t, ms, "ClusterRole").decode(t, &role)
	var rules []string
	for _, r := range role.Rules {
		rules = append(rules, fmt.Sprintf("groups %q resources %q verbs %q names %q urls %q", r.APIGroups, r.Resources, r.Verbs, r.ResourceNames, r.NonResourceURLs))
	}
	if want := `groups [""] resources ["nodes"] verbs ["get" "list" "watch" "patch"] names [] urls []`; len(rules) != 1 || rules[0] != want || role.AggregationRule != nil {
		t.Errorf("ClusterRole rules %q (aggregation %v), want exactly [%s]", rules, role.AggregationRule, want)
	}
	var binding struct {
		RoleRef struct {
			APIGroup   string `yaml:"apiGroup"`
			Kind, Name string
		} `yaml:"roleRef"`
		Subjects []struct {
			Kind, Name, Namespace string
		} `yaml:"subjects"`
	}
	find(t, ms, "ClusterRoleBinding").decode(t, &binding)
	if got := fmt.Sprintf("%+v %+v", binding.RoleRef, binding.Subjects); got != "{APIGroup:rbac.authorization.k8s.io Kind:ClusterRole Name:taprouter} [{Kind:ServiceAccount Name:taprouter Namespace:kube-system}]" {
		t.Errorf("ClusterRoleBinding: %s", got)
	}
}
