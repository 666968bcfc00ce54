package cluster

import (
	"encoding/json"
	"testing"
	"time"
)

// testReadyAfterCNI: every node turned Ready only after taprouter's
// DaemonSet pod on it had installed the plugin and the conflist (its
// install-cni init container finished): before that the runtime reports
// the network not ready, so no workload pod could start there.
func (c *testCluster) testReadyAfterCNI(t *testing.T) {
	var nodes struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Status   struct {
				Conditions []struct {
					Type               string    `json:"type"`
					Status             string    `json:"status"`
					LastTransitionTime time.Time `json:"lastTransitionTime"`
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(c.kubectl(t, "", "get", "nodes", "-o", "json")), &nodes); err != nil {
		t.Fatal(err)
	}
	var pods struct {
		Items []struct {
			Spec   struct{ NodeName string } `json:"spec"`
			Status struct {
				InitContainerStatuses []struct {
					Name  string `json:"name"`
					State struct {
						Terminated *struct {
							ExitCode   int       `json:"exitCode"`
							FinishedAt time.Time `json:"finishedAt"`
						} `json:"terminated"`
					} `json:"state"`
				} `json:"initContainerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(c.kubectl(t, "", "-n", "kube-system", "get", "pods", "-l", "app.kubernetes.io/name=taprouter", "-o", "json")), &pods); err != nil {
		t.Fatal(err)
	}
	installed := map[string]time.Time{}
	for _, p := range pods.Items {
		for _, s := range p.Status.InitContainerStatuses {
			if s.Name == "install-cni" && s.State.Terminated != nil && s.State.Terminated.ExitCode == 0 {
				installed[p.Spec.NodeName] = s.State.Terminated.FinishedAt
			}
		}
	}
	if len(nodes.Items) != len(c.Nodes) {
		t.Fatalf("%d nodes, want %d", len(nodes.Items), len(c.Nodes))
	}
	for _, n := range nodes.Items {
		at, ok := installed[n.Metadata.Name]
		if !ok {
			t.Errorf("%s: no finished install-cni of a taprouter pod", n.Metadata.Name)
			continue
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type != "Ready" {
				continue
			}
			// Both in whole seconds: Ready in the same second counts.
			if cond.Status != "True" || cond.LastTransitionTime.Before(at) {
				t.Errorf("%s: Ready=%s since %v, but install-cni finished at %v", n.Metadata.Name, cond.Status, cond.LastTransitionTime, at)
			} else {
				t.Logf("%s: install-cni finished %v, node Ready %v (%.0f s later)", n.Metadata.Name, at.Format(time.TimeOnly), cond.LastTransitionTime.Format(time.TimeOnly), cond.LastTransitionTime.Sub(at).Seconds())
			}
		}
	}
}
