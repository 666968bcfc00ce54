# taprouter. Everything but build needs root: the tests, the demo and the
# comparison benchmark create network namespaces, TAP devices and bridges.

GO    ?= go
BIN   := bin
SUDO  := $(if $(filter 0,$(shell id -u)),,sudo)
# Test binaries run as root; e2e's TestMain needs go in PATH to build taprouterd.
TEST_EXEC := $(if $(SUDO),-exec 'sudo env PATH=$(PATH)',)

# tool:Debian package pairs that deps installs when the tool is missing.
TOOLS := iperf3:iperf3 tcpdump:tcpdump ping:iputils-ping tracepath:iputils-tracepath \
	traceroute:traceroute sysctl:procps ip:iproute2 bridge:iproute2 ss:iproute2 ethtool:ethtool \
	iptables:iptables runc:runc \
	curl:curl wget:wget nc.openbsd:netcat-openbsd dig:dnsutils socat:socat iperf:iperf \
	busybox:busybox-static nginx:nginx-light

# The CNI plugin and the reference tools its tests drive it with: cnitool
# (containernetworking/cni) and the host-local and portmap plugins
# (containernetworking/plugins), all in CNI_BIN, the tests' CNI_PATH.
CNI_VERSION         := v1.3.1
CNI_PLUGINS_VERSION := v1.9.1
CNI_BIN             := $(BIN)/cni
CNI_PLUGINS         := ipam/host-local meta/portmap
# Where install-cni puts the plugins: the runtimes' default CNI bin_dir.
CNI_BIN_DIR         ?= /opt/cni/bin

# How long `make fuzz` runs each fuzz target, and `make test` (CI).
FUZZTIME    ?= 60s
CI_FUZZTIME ?= 3s

# The Go benchmarks (make bench), none of which needs root: the
# micro-benchmarks beside their code and bench's in-process routers, the
# netstack pods' TCP among them. make test (CI) runs each for
# CI_BENCHTIME, so that they run (not skip) and keep compiling.
BENCH_PKGS   := ./fib/ ./router/ ./tunnel/ ./bench/...
CI_BENCHTIME ?= 10x

# The packages with allocation tests (Test...Alloc...): they skip under the
# race detector, so `make test` runs them a second time without it.
ALLOC_PKGS = $(sort $(dir $(shell grep -rl --include='*_test.go' -E '^func Test[A-Za-z0-9_]*Alloc' . | grep -v '^./bin/')))

# The packages with Kubernetes tests: by convention every test that needs
# the binaries of k8s-tools (a real kube-apiserver through internal/k8stest)
# has K8s or Kube in its name (TestRBACK8s, TestNodeRoundTripK8s,
# TestKubeHarness), and no other test does; test-k8s runs exactly them
# (K8S_TESTS). Without bin/k8s they skip.
K8S_TESTS = K8s|Kube
K8S_PKGS  = $(sort $(dir $(shell grep -rl --include='*_test.go' -E '^func Test[A-Za-z0-9_]*($(K8S_TESTS))' . | grep -v '^./bin/')))

.PHONY: all build deps cni-tools install-cni k8s-tools images image test test-k8s test-cluster cluster-up cluster-down e2e fuzz demo bench clean

all: build

build:
	$(GO) build -o $(BIN)/taprouterd ./cmd/taprouterd
	$(GO) build -o $(BIN)/taprouter-demo ./cmd/taprouter-demo
	$(GO) build -o $(BIN)/taprouter-cluster ./cmd/taprouter-cluster

deps:
	@missing=""; \
	for pair in $(TOOLS); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing"; \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else \
		echo "deps: all tools present"; \
	fi

cni-tools:
	$(GO) build -o $(CNI_BIN)/taprouter ./cmd/taprouter-cni
	GOBIN=$(CURDIR)/$(CNI_BIN) $(GO) install github.com/containernetworking/cni/cnitool@$(CNI_VERSION)
	GOBIN=$(CURDIR)/$(CNI_BIN) $(GO) install \
		$(foreach p,$(CNI_PLUGINS),github.com/containernetworking/plugins/plugins/$(p)@$(CNI_PLUGINS_VERSION))

# Real Kubernetes components for the tests, built from the Go module proxy:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kube-proxy, kubectl, the upstream e2e test binary (e2e.test), the ginkgo
# CLI that runs it in parallel, and agnhost
# (the image the e2e specs run) from k8s.io/kubernetes through the helper
# module tools/k8s; etcd from go.etcd.io/etcd/server/v3 through tools/etcd
# (both upstream go.mods replace sibling modules with directories, so go
# install cannot build them); containerd, ctr and containerd-shim-runc-v2,
# crictl and CoreDNS with go install (their go.mods have no replaces); runc
# is Debian's (deps). The binaries are cached outside the tree, under a
# directory named by component and version, and linked into K8S_BIN; with a
# warm cache this target builds nothing. Measured on a shared 2-core machine
# (load 4-7) with a cold Go build cache: kube-apiserver 730 s, then kubectl
# 46 s, kube-proxy 26 s, etcd 47 s; warm: 0.02 s. Bump a version and the
# new directory builds from scratch.
K8S_VERSION        := v1.37.2
ETCD_VERSION       := v3.7.3
CONTAINERD_VERSION := v2.4.2
CRICTL_VERSION     := v1.37.0
COREDNS_VERSION    := v1.14.7
TAPROUTER_CACHE ?= $(HOME)/.cache/taprouter
CACHE_DIR       := $(abspath $(TAPROUTER_CACHE))
K8S_CACHE       := $(CACHE_DIR)/k8s/$(K8S_VERSION)
ETCD_CACHE      := $(CACHE_DIR)/etcd/$(ETCD_VERSION)
CONTAINERD_CACHE := $(CACHE_DIR)/containerd/$(CONTAINERD_VERSION)
CRICTL_CACHE    := $(CACHE_DIR)/crictl/$(CRICTL_VERSION)
COREDNS_CACHE   := $(CACHE_DIR)/coredns/$(COREDNS_VERSION)
K8S_BIN         := $(BIN)/k8s
K8S_CMDS        := kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
CONTAINERD_CMDS := containerd containerd-shim-runc-v2 ctr
# What `kubectl version` and the API server's /version report; upstream's
# build (hack/lib/version.sh) sets the same variables.
K8S_LDFLAGS     := -s -w $(foreach v,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(v).gitVersion=$(K8S_VERSION) -X $(v).gitMajor=1 -X $(v).gitMinor=37 -X $(v).gitTreeState=clean)
K8S_TOOL_FILES  := $(addprefix $(K8S_CACHE)/,$(K8S_CMDS) e2e.test ginkgo agnhost) $(ETCD_CACHE)/etcd \
	$(addprefix $(CONTAINERD_CACHE)/,$(CONTAINERD_CMDS)) $(CRICTL_CACHE)/crictl $(COREDNS_CACHE)/coredns

k8s-tools: $(K8S_TOOL_FILES)
	@mkdir -p $(K8S_BIN)
	@for f in $^; do ln -sfn "$$f" $(K8S_BIN)/; done

# Each binary is written under a temporary name and renamed, so an
# interrupted build leaves nothing that looks cached. Static, like upstream's.
$(addprefix $(K8S_CACHE)/,$(K8S_CMDS)): $(K8S_CACHE)/%:
	@mkdir -p $(@D)
	CGO_ENABLED=0 $(GO) build -C tools/k8s -trimpath -ldflags '$(K8S_LDFLAGS)' -o $@.tmp k8s.io/kubernetes/cmd/$*
	mv $@.tmp $@

# agnhost: the one binary of the e2e specs' test image (make images).
$(K8S_CACHE)/agnhost:
	@mkdir -p $(@D)
	CGO_ENABLED=0 $(GO) build -C tools/k8s -trimpath -ldflags '$(K8S_LDFLAGS)' -o $@.tmp k8s.io/kubernetes/test/images/agnhost
	mv $@.tmp $@

# The upstream conformance/e2e suite, as upstream builds it (a test binary).
$(K8S_CACHE)/e2e.test:
	@mkdir -p $(@D)
	CGO_ENABLED=0 $(GO) test -C tools/k8s -c -trimpath -ldflags '$(K8S_LDFLAGS)' -o $@.tmp k8s.io/kubernetes/test/e2e
	mv $@.tmp $@

# The ginkgo CLI at the version e2e.test is built with: it runs e2e.test in
# parallel processes (Serial specs last, alone), as upstream's CI does.
$(K8S_CACHE)/ginkgo:
	@mkdir -p $(@D)
	CGO_ENABLED=0 $(GO) build -C tools/k8s -trimpath -ldflags '-s -w' -o $@.tmp github.com/onsi/ginkgo/v2/ginkgo
	mv $@.tmp $@

$(ETCD_CACHE)/etcd:
	@mkdir -p $(@D)
	CGO_ENABLED=0 $(GO) build -C tools/etcd -trimpath -ldflags '-s -w' -o $@.tmp go.etcd.io/etcd/server/v3
	mv $@.tmp $@

# no_btrfs: the btrfs snapshotter needs libbtrfs headers; overlayfs is used.
$(addprefix $(CONTAINERD_CACHE)/,$(CONTAINERD_CMDS)): $(CONTAINERD_CACHE)/%:
	@mkdir -p $(@D)/.tmp-$*
	CGO_ENABLED=0 GOBIN=$(@D)/.tmp-$* $(GO) install -trimpath -tags no_btrfs \
		-ldflags '-s -w -X github.com/containerd/containerd/v2/version.Version=$(CONTAINERD_VERSION)' \
		github.com/containerd/containerd/v2/cmd/$*@$(CONTAINERD_VERSION)
	mv $(@D)/.tmp-$*/$* $@ && rmdir $(@D)/.tmp-$*

$(CRICTL_CACHE)/crictl:
	@mkdir -p $(@D)/.tmp
	CGO_ENABLED=0 GOBIN=$(@D)/.tmp $(GO) install -trimpath \
		-ldflags '-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$(CRICTL_VERSION)' \
		sigs.k8s.io/cri-tools/cmd/crictl@$(CRICTL_VERSION)
	mv $(@D)/.tmp/crictl $@ && rmdir $(@D)/.tmp

$(COREDNS_CACHE)/coredns:
	@mkdir -p $(@D)/.tmp
	CGO_ENABLED=0 GOBIN=$(@D)/.tmp $(GO) install -trimpath -ldflags '-s -w' github.com/coredns/coredns@$(COREDNS_VERSION)
	mv $(@D)/.tmp/coredns $@ && rmdir $(@D)/.tmp

# Container images for a cluster without a registry, as docker-archive
# tarballs for `ctr -n k8s.io images import` (tools/image builds them; see
# its --help): the sandbox, the e2e suite's agnhost, CoreDNS and taprouter.
# Names are exactly what the e2e binary asks for (k8s.io/kubernetes
# test/utils/image/manifest.go at K8S_VERSION; tools/image's tests check
# them); the pause name is also containerd's default sandbox image.
# Programs come with their shared libraries, from this machine's Debian.
IMAGES_DIR    := $(BIN)/images
IMAGE_TOOL    := $(IMAGES_DIR)/image-tool
PAUSE_IMAGE   := registry.k8s.io/pause:3.10.2
AGNHOST_IMAGE := registry.k8s.io/e2e-test-images/agnhost:2.66.1
COREDNS_IMAGE := registry.k8s.io/coredns/coredns:$(COREDNS_VERSION)
TAPROUTER_IMAGE := taprouter/taprouter:dev
# The other images the [sig-network] [Conformance] specs run: the glibc
# DNS prober of dns.go, the nginx pods of endpoints.go and
# endpointslice.go, and busybox (e2epod's default test image).
GLIBC_DNS_IMAGE := registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1
NGINX_IMAGE   := registry.k8s.io/e2e-test-images/nginx:1.27.0-2
BUSYBOX_IMAGE := registry.k8s.io/e2e-test-images/busybox:1.37.0-2
IMAGE_PATH    := PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# iptables for taprouterd --masquerade: the variant the host's iptables is
# (kube-proxy on the node uses the host's; both must write the same
# tables), its multi-call binary with the usual names, and the extension
# modules it dlopens.
IPTABLES_MULTI  = $(if $(findstring nf_tables,$(shell iptables --version 2>/dev/null)),xtables-nft-multi,xtables-legacy-multi)
IPTABLES_NAMES := iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore
XTABLES_DIR    = $(patsubst %/,%,$(dir $(firstword $(wildcard /usr/lib/*/xtables/libxt_comment.so))))
# agnhost's tools (its Dockerfile installs them from Alpine: bind-tools,
# curl, netcat-openbsd, iproute2, iperf, bash, socat) and the utilities
# the specs' shell commands use, which Alpine's busybox has, wget among
# them (service.go runs wget -T 1 -q -O -): GNU wget, since Debian's static
# busybox wget crashes (SIGSEGV) on wget -T 1 -q -O - http://127.0.0.1:1/.
SHELL_TOOLS   := cat echo ls sleep mkdir rm cp mv touch seq head tail wc env date timeout test [ tr cut \
	sort uniq id hostname grep sed awk printf true false kill ps getent uname stat chmod ln dd tee xargs
AGNHOST_TOOLS := curl wget nc.openbsd dig nslookup socat iperf ip ss bash $(SHELL_TOOLS)
# A Debian /bin/sh (dash) with SHELL_TOOLS, /etc of tools/image/base.
DEBIAN_SHELL  = --bin $$(which dash):/bin/dash --symlink /bin/sh:dash \
	$(foreach t,$(SHELL_TOOLS),--bin $$(which $(t)):/usr/bin/$(t)) \
	--file tools/image/base/passwd:/etc/passwd:0644 --file tools/image/base/group:/etc/group:0644 \
	--file /etc/nsswitch.conf:/etc/nsswitch.conf:0644 --dir /tmp:1777 --env $(IMAGE_PATH)
# The k8s.io/kubernetes sources (agnhost's porter certificates), downloaded
# if the module cache lacks them.
K8S_SRC = $(shell cd tools/k8s && $(GO) mod download -json k8s.io/kubernetes | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p')

images: $(addprefix $(IMAGES_DIR)/,pause.tar agnhost.tar coredns.tar taprouter.tar taprouter-next.tar \
	glibc-dns-testing.tar nginx.tar busybox.tar)
image: $(IMAGES_DIR)/taprouter.tar

$(IMAGE_TOOL): FORCE
	@mkdir -p $(@D)
	$(GO) build -C tools/image -o $(CURDIR)/$@ .

$(IMAGES_DIR)/pause.tar: $(IMAGE_TOOL) FORCE
	CGO_ENABLED=0 $(GO) build -C tools/image -trimpath -ldflags '-s -w' -o $(CURDIR)/$(IMAGES_DIR)/pause ./pause
	$(IMAGE_TOOL) --tag $(PAUSE_IMAGE) --out $@ --bin $(IMAGES_DIR)/pause:/pause --entrypoint /pause

$(IMAGES_DIR)/agnhost.tar: $(IMAGE_TOOL) $(K8S_CACHE)/agnhost $(COREDNS_CACHE)/coredns FORCE
	$(IMAGE_TOOL) --tag $(AGNHOST_IMAGE) --out $@ \
		--bin $(K8S_CACHE)/agnhost:/agnhost --symlink /agnhost-2:agnhost \
		--file $(K8S_SRC)/test/images/agnhost/porter/localhost.crt:/localhost.crt:0644 \
		--file $(K8S_SRC)/test/images/agnhost/porter/localhost.key:/localhost.key:0644 \
		--bin $(COREDNS_CACHE)/coredns:/coredns \
		--bin $$(which dash):/bin/dash --symlink /bin/sh:dash \
		$(foreach t,$(AGNHOST_TOOLS),--bin $$(which $(t)):/usr/bin/$(t)) \
		--symlink /usr/bin/nc:nc.openbsd --symlink /usr/local/bin/iperf:/usr/bin/iperf \
		--file tools/image/agnhost/passwd:/etc/passwd:0644 --file tools/image/agnhost/group:/etc/group:0644 \
		--file /etc/nsswitch.conf:/etc/nsswitch.conf:0644 --file /etc/protocols:/etc/protocols:0644 \
		--file /etc/services:/etc/services:0644 \
		--dir /uploads --dir /tmp:1777 --dir /root:0700 \
		--env $(IMAGE_PATH) --entrypoint /agnhost --cmd pause

# glibc-dns-testing: upstream's is Debian with dnsutils and /coredns.
$(IMAGES_DIR)/glibc-dns-testing.tar: $(IMAGE_TOOL) $(COREDNS_CACHE)/coredns FORCE
	$(IMAGE_TOOL) --tag $(GLIBC_DNS_IMAGE) --out $@ $(DEBIAN_SHELL) \
		$(foreach t,dig nslookup host,--bin $$(which $(t)):/usr/bin/$(t)) \
		--bin $(COREDNS_CACHE)/coredns:/coredns --cmd /bin/sh

# nginx: upstream's is nginx:1.27-alpine; this is Debian's nginx-light with
# tools/image/nginx's configuration (port 80, the welcome page).
$(IMAGES_DIR)/nginx.tar: $(IMAGE_TOOL) FORCE
	$(IMAGE_TOOL) --tag $(NGINX_IMAGE) --out $@ $(DEBIAN_SHELL) \
		--bin $$(which nginx):/usr/sbin/nginx --file /etc/nginx/mime.types:/etc/nginx/mime.types:0644 \
		--file tools/image/nginx/nginx.conf:/etc/nginx/nginx.conf:0644 \
		--file tools/image/nginx/index.html:/usr/share/nginx/html/index.html:0644 \
		--dir /var/lib/nginx --dir /var/log/nginx --dir /run --dir /var/lock \
		--cmd nginx --cmd -g --cmd 'daemon off;'

# busybox: Debian's static busybox and a link for each of its applets but
# wget, which crashes with -T (see AGNHOST_TOOLS): GNU wget instead.
$(IMAGES_DIR)/busybox.tar: $(IMAGE_TOOL) FORCE
	$(IMAGE_TOOL) --tag $(BUSYBOX_IMAGE) --out $@ --bin $$(which busybox):/bin/busybox \
		$$(busybox --list | grep -vx -e busybox -e wget | sed 's|.*|--symlink /bin/&:busybox|') \
		--bin $$(which wget):/bin/wget \
		--file tools/image/base/passwd:/etc/passwd:0644 --file tools/image/base/group:/etc/group:0644 \
		--dir /tmp:1777 --env PATH=/usr/sbin:/usr/bin:/sbin:/bin --cmd sh

$(IMAGES_DIR)/coredns.tar: $(IMAGE_TOOL) $(COREDNS_CACHE)/coredns FORCE
	$(IMAGE_TOOL) --tag $(COREDNS_IMAGE) --out $@ --bin $(COREDNS_CACHE)/coredns:/coredns \
		--file /etc/nsswitch.conf:/etc/nsswitch.conf:0644 --dir /tmp:1777 --entrypoint /coredns

$(IMAGES_DIR)/taprouter.tar: $(IMAGE_TOOL) cni-tools FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(IMAGES_DIR)/taprouterd ./cmd/taprouterd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(IMAGES_DIR)/taprouter-cni ./cmd/taprouter-cni
	$(IMAGE_TOOL) --tag $(TAPROUTER_IMAGE) --out $@ $(TAPROUTER_IMAGE_FILES)

# The image the cluster tests roll the DaemonSet to: the same files under
# another name and an image ID of its own (IMAGE_REVISION differs).
$(IMAGES_DIR)/taprouter-next.tar: $(IMAGES_DIR)/taprouter.tar
	$(IMAGE_TOOL) --tag taprouter/taprouter:next --out $@ $(TAPROUTER_IMAGE_FILES) --env IMAGE_REVISION=next

TAPROUTER_IMAGE_FILES = \
		--bin $(IMAGES_DIR)/taprouterd:/usr/local/bin/taprouterd \
		--bin $(IMAGES_DIR)/taprouter-cni:/usr/lib/taprouter/cni/taprouter \
		--bin $(CNI_BIN)/host-local:/usr/lib/taprouter/cni/host-local \
		--bin $(CNI_BIN)/portmap:/usr/lib/taprouter/cni/portmap \
		--bin $$(which $(IPTABLES_MULTI)):/usr/sbin/$(IPTABLES_MULTI) \
		$(foreach n,$(IPTABLES_NAMES),--symlink /usr/sbin/$(n):$(IPTABLES_MULTI)) \
		--bin '$(XTABLES_DIR)/*.so:$(XTABLES_DIR)/' \
		--file /etc/protocols:/etc/protocols:0644 --file /etc/services:/etc/services:0644 \
		--dir /run:0755 --dir /tmp:1777 \
		--env $(IMAGE_PATH) --entrypoint /usr/local/bin/taprouterd

.PHONY: FORCE
FORCE:

# The plugin as /opt/cni/bin/taprouter, with the plugins deploy/10-taprouter.conflist chains.
install-cni: cni-tools
	$(SUDO) install -d $(DESTDIR)$(CNI_BIN_DIR)
	$(SUDO) install -m 0755 $(addprefix $(CNI_BIN)/,taprouter host-local portmap) $(DESTDIR)$(CNI_BIN_DIR)/

# CI (.ci/run). Every test, unit and end-to-end, runs with the race
# detector. For e2e it instruments the test process (the testbed), not the
# taprouterd under test, which TestMain builds without it; measured on a
# shared 2-core machine, e2e took 210-295 s with -race and 282 s without
# (the daemon and the kernel do the work), so it costs nothing worth saving.
# The allocation tests skip under -race and run again without it; then the
# Go benchmarks run for CI_BENCHTIME each (18 s, no root); then every
# fuzz target runs for CI_FUZZTIME (about CI_FUZZTIME + 2 s each with a warm
# cache). The whole target took 514 s with warm Go and k8s-tools caches; a cold Go cache adds
# about 8 minutes of building (vet 220 s, race test binaries 150 s, fuzz
# binaries 20-45 s each, alloc test binaries 30 s). It needs k8s-tools, so
# that the Kubernetes tests (see K8S_PKGS) run instead of skipping: a no-op
# with a warm cache (outside the tree, TAPROUTER_CACHE), about 12 minutes
# more with a cold one (kube-apiserver alone 730 s on this machine). It
# builds the images too and runs tools/image's tests on them (make images
# 23 s from an empty bin/images with warm caches, the tests 23 s as root),
# and last the cluster tests (test-cluster, about 8-10 minutes). In all, a
# fresh clone with warm caches took 17 min 11 s (849 test runs passed).
test: deps cni-tools k8s-tools images
	$(GO) vet ./...
	$(GO) vet -C tools/image ./...
	TAPROUTER_CONTAINERD=$(CONTAINERD_CACHE) $(GO) test -C tools/image $(TEST_EXEC) -count=1 -v ./...
	$(GO) test $(TEST_EXEC) -race -v -count=1 -timeout 25m ./...
	$(GO) test $(TEST_EXEC) -v -count=1 -run Alloc $(ALLOC_PKGS)
	$(GO) test -count=1 -run '^$$' -bench . -benchtime $(CI_BENCHTIME) -benchmem $(BENCH_PKGS)
	GO=$(GO) bash .ci/fuzz $(CI_FUZZTIME)
	$(MAKE) test-cluster

# The cluster tests (e2e/cluster): a real 3-node cluster per backend
# (internal/kubecluster) with taprouter installed from deploy/, upstream's
# sig-network conformance specs, a 20-pod mesh, a hostPort, restarts and an
# image upgrade under a TCP stream. Off in plain go test (minutes each);
# make test runs this after the other tests.
test-cluster: deps cni-tools k8s-tools images
	TAPROUTER_CLUSTER_TESTS=1 $(GO) test $(TEST_EXEC) -v -count=1 -timeout 50m ./e2e/cluster/

# A cluster that stays up (3 nodes, vxlan; CLUSTER_ARGS for more, see
# bin/taprouter-cluster --help): prints KUBECONFIG= and NETNS= lines; the
# API server is reachable from inside the cluster's namespaces only:
#   ip netns exec <NETNS> bin/k8s/kubectl --kubeconfig <KUBECONFIG> get pods -A
CLUSTER_DIR  ?= /tmp/taprouter-cluster
CLUSTER_ARGS ?=
cluster-up: deps cni-tools k8s-tools images build
	$(SUDO) $(BIN)/taprouter-cluster up --dir $(CLUSTER_DIR) $(CLUSTER_ARGS)

# Only the one binary: a tree that does not build can still take a cluster down.
cluster-down:
	$(GO) build -o $(BIN)/taprouter-cluster ./cmd/taprouter-cluster
	$(SUDO) $(BIN)/taprouter-cluster down --dir $(CLUSTER_DIR)

# Just the Kubernetes tests (names with K8s or Kube, see K8S_PKGS), against
# the real kube-apiserver, etcd and kube-proxy of k8s-tools; e2e's need
# cni-tools too. With a warm cache deploy's and k8stest's take about 20 s.
test-k8s: deps cni-tools k8s-tools
	$(GO) test $(TEST_EXEC) -v -count=1 -timeout 25m -run '$(K8S_TESTS)' $(K8S_PKGS)

e2e: deps cni-tools
	$(GO) test $(TEST_EXEC) -v -count=1 -timeout 25m ./e2e/

# Every fuzz target (func FuzzXxx in a *_test.go, found by .ci/fuzz) for
# FUZZTIME each; prints the executions per target, fails on a finding.
fuzz:
	GO=$(GO) bash .ci/fuzz $(FUZZTIME)

demo: deps build cni-tools
	$(SUDO) $(BIN)/taprouter-demo

bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem $(BENCH_PKGS)
	$(GO) build -o $(BIN)/compare ./bench/compare
	$(GO) test -c -o $(BIN)/bench.test ./bench
	$(SUDO) $(BIN)/compare --taprouterd $(BIN)/taprouterd --bench-test $(BIN)/bench.test --json bench/results.json --svg bench/results.svg

clean:
	rm -rf $(BIN)
