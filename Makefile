# taprouter. Everything but build needs root: the tests, the demo and the
# comparison benchmark create network namespaces, TAP devices and bridges.

GO    ?= go
BIN   := bin
SUDO  := $(if $(filter 0,$(shell id -u)),,sudo)
# Test binaries run as root; e2e's TestMain needs go in PATH to build taprouterd.
TEST_EXEC := $(if $(SUDO),-exec 'sudo env PATH=$(PATH)',)

# tool:Debian package pairs that deps installs when the tool is missing.
TOOLS := iperf3:iperf3 tcpdump:tcpdump ping:iputils-ping tracepath:iputils-tracepath \
	traceroute:traceroute ip:iproute2 bridge:iproute2 ss:iproute2 ethtool:ethtool

.PHONY: all build deps test e2e demo bench clean

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

test: deps
	$(GO) vet ./...
	$(GO) test $(TEST_EXEC) -v -count=1 -timeout 25m ./...

e2e: deps
	$(GO) test $(TEST_EXEC) -v -count=1 -timeout 25m ./e2e/

demo: deps build
	$(SUDO) $(BIN)/taprouter-demo

bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./fib/ ./router/ ./tunnel/ ./bench/...
	$(GO) build -o $(BIN)/compare ./bench/compare
	$(SUDO) $(BIN)/compare --taprouterd $(BIN)/taprouterd

clean:
	rm -rf $(BIN)
