// Package masq owns the node's egress masquerade: the iptables rules that
// give pods' traffic to addresses outside the cluster the node's address as
// its source, while traffic between pods keeps the pods' own addresses.
//
// In the nat table of the calling process's network namespace (the node's),
// a chain TAPROUTER-MASQ, jumped to from POSTROUTING for every destination
// that is not local, holds first a RETURN for each of the cluster's pod
// CIDRs as destination (pod-to-pod traffic, including Service traffic that
// kube-proxy DNATed to a pod, is never NATed), then a MASQUERADE for each of
// them as source: a pod's packet that leaves the node for anywhere else is
// SNATed to the address of the interface it leaves by. This is the shape of
// kind's masq agent (kindnet, KIND-MASQ-AGENT) and of ip-masq-agent; the
// router itself never rewrites addresses.
//
// The rules are written with github.com/coreos/go-iptables, the library
// flannel uses for the same job: it drives the iptables binary of the node
// (legacy or nft backend, whichever kube-proxy also uses, so that both
// agents' rules live in the same tables), takes the xtables lock with
// --wait, and knows which options the installed version has (--random-fully,
// used when present, as flannel does). A netlink or nftables library would
// put the rules where an iptables-mode kube-proxy and an operator's
// iptables-save do not look.
//
// Ensure is idempotent and repairs: it adds what is missing and rewrites the
// chain when its rules are not the expected ones in the expected order.
// Run calls it on a timer, so that a rule someone deletes comes back. Remove
// deletes the jump and the chain. Like kindnet, taprouterd leaves the rules
// in place when it exits unless told otherwise: a restarting daemon must not
// cut the pods' egress, and the rules only touch traffic from the pod
// ranges.
package masq
