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
	iptables:iptables

# The CNI plugin and the reference tools its tests drive it with: cnitool
# (containernetworking/cni) and the host-local and portmap plugins
# (containernetworking/plugins), all in CNI_BIN, the tests' CNI_PATH.
CNI_VERSION         := v1.3.1
CNI_PLUGINS_VERSION := v1.9.1
CNI_BIN             := $(BIN)/cni
CNI_PLUGINS         := ipam/host-local meta/portmap
# Where install-cni puts the plugins: the runtimes' default CNI bin_dir.
CNI_BIN_DIR         ?= /opt/cni/bin

.PHONY: all build deps cni-tools install-cni test e2e demo bench clean

all: build

build:
	$(GO) build -o $(BIN)/taprouterd ./cmd/taprouterd
	$(GO) build -o $(BIN)/taprouter-demo ./cmd/taprouter-demo

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

# The plugin as /opt/cni/bin/taprouter, with the plugins deploy/10-taprouter.conflist chains.
install-cni: cni-tools
	$(SUDO) install -d $(DESTDIR)$(CNI_BIN_DIR)
	$(SUDO) install -m 0755 $(addprefix $(CNI_BIN)/,taprouter host-local portmap) $(DESTDIR)$(CNI_BIN_DIR)/

test: deps cni-tools
	$(GO) vet ./...
	$(GO) test $(TEST_EXEC) -v -count=1 -timeout 25m ./...

e2e: deps cni-tools
	$(GO) test $(TEST_EXEC) -v -count=1 -timeout 25m ./e2e/

demo: deps build cni-tools
	$(SUDO) $(BIN)/taprouter-demo

bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./fib/ ./router/ ./tunnel/ ./bench/...
	$(GO) build -o $(BIN)/compare ./bench/compare
	$(SUDO) $(BIN)/compare --taprouterd $(BIN)/taprouterd

clean:
	rm -rf $(BIN)
