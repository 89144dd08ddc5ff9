# FlowForest: `make help` lists the targets. Generated files go to out/.
SHELL := /bin/bash
.DEFAULT_GOAL := help

OUT        ?= out
SWIFT      ?= swift
CLANG      ?= clang
CONFIG     ?= debug
SWIFT_FLAGS ?=
# Fixed under out/, whatever OUT says: Sources/CFlowForestBPF includes the
# byte list from there to embed the object in the binary.
BPF_OBJ    := out/bpf/flowforest.bpf.o
BPF_EMBED  := out/bpf/flowforest.bpf.inc
# Debian packages the build, the tests and the lab need (see docs/operations.md).
APT_PACKAGES := libpcap-dev libbpf-dev libelf-dev zlib1g-dev linux-libc-dev bpftool \
	tcpdump iproute2 iputils-ping netcat-openbsd curl hping3 nmap netsniff-ng \
	python3-venv python3-pip postgresql prometheus libcap2-bin \
	chromium chromium-driver nfdump pmacct softflowd prometheus-alertmanager gdb
# Python venvs: the parity reference (scikit-learn, isotree), the dashboard
# test (selenium) and the deploy tests (pytest, podman-compose).
VENV       ?= $(OUT)/venv
DASHBOARD_VENV ?= $(OUT)/venv-dashboard
DEPLOY_VENV ?= $(OUT)/deploy-venv
# Tiers `make test` runs (Tests/tiers.py): unit memory service lab api deploy dashboard.
TIERS      ?=
INTERFACE  ?= $(shell ip route show default 2>/dev/null | awk '/default/ {print $$5; exit}')

# Quiet rules, as in libbpf-bootstrap: one line per step; V=1 shows the commands.
ifeq ($(V),1)
	Q =
	msg =
else
	Q = @
	msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

.PHONY: help deps bpf build release test fuzz test-swift run bench bench-collector bench-offline demo clean test-parity bench-detection eval image image-stage image-build test-deploy test-container deps-deploy test-dashboard

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

deps: ## Install the Debian packages FlowForest needs (idempotent, quiet when present)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "deps: missing packages: $$missing (run as root: sudo make deps)"; exit 1; fi; \
		echo "deps: installing $$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

bpf: $(BPF_EMBED) ## Compile the eBPF program (clang -target bpf) and its byte list for embedding

$(BPF_OBJ): bpf/flowforest.bpf.c $(wildcard bpf/*.h)
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) -target bpf -mcpu=v3 -O2 -g -Wall -Werror -D__TARGET_ARCH_x86 \
		-I bpf -I /usr/include/$(shell uname -m)-linux-gnu -c $< -o $@

# The object as a C initializer list ("0x7f,0x45,..."), written whole or not at all.
$(BPF_EMBED): $(BPF_OBJ)
	$(call msg,EMBED,$@)
	$(Q)od -An -v -tx1 $< | sed -e 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g' > $@.tmp && mv $@.tmp $@

build: deps bpf ## Build the daemon and, beside it, the lab executable flowforest-lab (CONFIG=release for an optimised build)
	$(SWIFT) build -c $(CONFIG) $(SWIFT_FLAGS)

release: ## Build optimised binaries (flowforest and flowforest-lab)
	$(MAKE) build CONFIG=release

test: deps deps-deploy bpf $(VENV)/.installed $(DEPLOY_VENV)/.installed $(DASHBOARD_VENV)/.installed ## Every test in tiers (unit and service in parallel, root labs one at a time, then schemathesis, deploy, dashboard), a summary, and a check that nothing was left behind
	@mkdir -p $(OUT)
	@Tests/lab/leftovers.sh snapshot $(OUT)/leftovers.before
	@start=$$(date +%s); $(SWIFT) build $(SWIFT_FLAGS) --build-tests || exit 1; \
		echo "==> build: $$(( $$(date +%s) - start ))s"
	@# The leftover check runs after failures too: that is when labs leak.
	@rc=0; SWIFT="$(SWIFT)" SWIFT_FLAGS="$(SWIFT_FLAGS)" OUT="$(OUT)" VENV="$(VENV)" DEPLOY_VENV="$(DEPLOY_VENV)" \
		DASHBOARD_VENV="$(DASHBOARD_VENV)" python3 Tests/tiers.py $(TIERS) || rc=$$?; \
		Tests/lab/leftovers.sh check $(OUT)/leftovers.before || { [ $$rc -ne 0 ] || rc=1; }; exit $$rc

# Longer fuzzing than `make test` runs: the seeded Swift fuzz suites scaled up
# and schemathesis for FUZZ_SECONDS, with a fresh seed each run (printed, so a
# failure replays with FLOWFOREST_FUZZ_SEED=N).
FUZZ_SCALE   ?= 50
FUZZ_SECONDS ?= 600
FUZZ_SEED    ?= $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
FUZZ_SEED    := $(FUZZ_SEED)
FUZZ_SUITES  := IngestFuzzTests|QueryFuzzTests|SpecTimeFormatTests|TimestampFuzzTests|CaptureFileFuzzTests|PacketParserTests|CollectorFuzzTests

fuzz: deps bpf $(DEPLOY_VENV)/.installed ## Fuzz longer (FUZZ_SCALE x the test loops, FUZZ_SECONDS of schemathesis), new seed each run
	@echo "fuzz: seed $(FUZZ_SEED) (replay: make fuzz FUZZ_SEED=$(FUZZ_SEED))"
	$(SWIFT) build $(SWIFT_FLAGS) --build-tests
	FLOWFOREST_FUZZ_SEED=$(FUZZ_SEED) FLOWFOREST_FUZZ_SCALE=$(FUZZ_SCALE) \
		$(SWIFT) test $(SWIFT_FLAGS) --skip-build --filter '$(FUZZ_SUITES)'
	FLOWFOREST_FUZZ_SEED=$(FUZZ_SEED) FLOWFOREST_SCHEMA_SECONDS=$(FUZZ_SECONDS) SWIFT="$(SWIFT)" SWIFT_FLAGS="$(SWIFT_FLAGS)" \
		DEPLOY_VENV="$(DEPLOY_VENV)" OUT="$(OUT)" python3 Tests/tiers.py api

# Reference venv for the isolation-forest parity test and benchmark (scikit-learn, isotree).

$(VENV)/.installed: Tests/parity/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r Tests/parity/requirements.txt
	touch $@

test-parity: bpf $(VENV)/.installed ## Isolation forest vs scikit-learn: mean ROC AUC over 5 seeds
	FLOWFOREST_REQUIRE_PARITY=1 FLOWFOREST_PYTHON=$(abspath $(VENV))/bin/python \
		$(SWIFT) test $(SWIFT_FLAGS) --filter ParityTests

# Dashboard browser test: selenium from PyPI driving Debian's headless chromium.

$(DASHBOARD_VENV)/.installed: Tests/dashboard/requirements.txt
	python3 -m venv $(DASHBOARD_VENV)
	$(DASHBOARD_VENV)/bin/pip install -q --disable-pip-version-check -r Tests/dashboard/requirements.txt
	touch $@

test-dashboard: deps bpf $(DASHBOARD_VENV)/.installed ## Dashboard in headless chromium against a live daemon; saves docs/screenshots/
	$(SWIFT) build $(SWIFT_FLAGS) --product flowforest
	FLOWFOREST_BIN=$$($(SWIFT) build $(SWIFT_FLAGS) --show-bin-path)/flowforest \
		$(DASHBOARD_VENV)/bin/python Tests/dashboard/test_dashboard.py

bench-detection: $(VENV)/.installed ## Forest training and scoring vs scikit-learn and isotree, as ratios
	$(SWIFT) build -c release $(SWIFT_FLAGS) --product DetectionBench
	$(VENV)/bin/python Tests/parity/bench.py $$($(SWIFT) build -c release $(SWIFT_FLAGS) --show-bin-path)/DetectionBench

# Evaluation set: development (tuned on) or validation (never tuned on).
SET ?= development

eval: deps bpf ## Detector, scoring live on eBPF capture, against real attack tools in a namespace lab (SET=development|validation, ONLY="name;name"; root, 25-30 min)
	$(SWIFT) build $(SWIFT_FLAGS) --product flowforest-lab
	FLOWFOREST_EVAL_SET=$(SET) $(if $(ONLY),FLOWFOREST_EVAL_ONLY="$(ONLY)") $$($(SWIFT) build $(SWIFT_FLAGS) --show-bin-path)/flowforest-lab eval

run: build ## Start the sensor on the default-route interface (INTERFACE=...)
	@echo "run: capturing on $(INTERFACE)"
	$$($(SWIFT) build -c $(CONFIG) $(SWIFT_FLAGS) --show-bin-path)/flowforest run --interface $(INTERFACE)

bench: build ## Compare capture modes on a namespace lab (root)
	$$($(SWIFT) build -c $(CONFIG) $(SWIFT_FLAGS) --show-bin-path)/flowforest-lab bench

bench-collector: build ## FlowForest's NetFlow/IPFIX collector against nfcapd on the same datagrams (BENCH_ARGS="--model model.json")
	$$($(SWIFT) build -c $(CONFIG) $(SWIFT_FLAGS) --show-bin-path)/flowforest-lab bench-collector $(BENCH_ARGS)

bench-offline: build ## flowforest analyze against nfpcapd on a synthetic pcap file (BENCH_ARGS="--packets 2000000 --flows 50000 --json offline.json")
	$$($(SWIFT) build -c $(CONFIG) $(SWIFT_FLAGS) --show-bin-path)/flowforest-lab bench-offline $(BENCH_ARGS)

demo: build ## Live demo: namespace lab, normal clients, recurring attacks, dashboard on 127.0.0.1:8080 (root)
	$$($(SWIFT) build -c $(CONFIG) $(SWIFT_FLAGS) --show-bin-path)/flowforest-lab demo

clean: ## Remove generated files
	rm -rf $(OUT) .build

# Deploy (deploy/, Tests/deploy/): pytest and podman-compose in their own venv.
DEPLOY_APT_PACKAGES := prometheus systemd python3-venv podman runc debootstrap iproute2 iputils-ping
IMAGE      ?= localhost/flowforest:latest
IMAGE_DIR  := $(OUT)/image

deps-deploy:
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(DEPLOY_APT_PACKAGES)"

$(DEPLOY_VENV)/.installed: Tests/deploy/requirements.txt
	python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install -q --disable-pip-version-check -r Tests/deploy/requirements.txt
	touch $@

test-deploy: deps-deploy bpf $(DEPLOY_VENV)/.installed ## promtool, systemd-analyze, Prometheus evaluating every dashboard and alert query against a live sensor
	$(SWIFT) build $(SWIFT_FLAGS) --product flowforest
	FLOWFOREST_BIN=$$($(SWIFT) build $(SWIFT_FLAGS) --show-bin-path)/flowforest \
		$(DEPLOY_VENV)/bin/python -m pytest -q -rs Tests/deploy/test_static.py Tests/deploy/test_prometheus_live.py \
			Tests/deploy/test_systemd_identity.py

# The daemon only: its eBPF object is embedded, and the lab (flowforest-lab) stays out.
image: image-stage image-build ## Container image (podman) from a release build with the Swift runtime linked in (IMAGE=...)

image-stage: deps bpf ## The image's release binary and dashboard assets in out/image/ (needs Swift, not podman)
	$(SWIFT) build -c release --static-swift-stdlib $(SWIFT_FLAGS) --product flowforest
	rm -rf $(IMAGE_DIR) && mkdir -p $(IMAGE_DIR)
	bin=$$($(SWIFT) build -c release --static-swift-stdlib $(SWIFT_FLAGS) --show-bin-path) && \
		cp $$bin/flowforest $(IMAGE_DIR)/ && \
		cp -r $$bin/flowforest_FlowForestServer.resources $(IMAGE_DIR)/
	# Symbols and debug info are half the binary; the image ships without them.
	strip $(IMAGE_DIR)/flowforest

image-build: ## podman build of what image-stage left in out/image/ (needs podman, not Swift)
	@test -x $(IMAGE_DIR)/flowforest || { echo "$(IMAGE_DIR)/flowforest is missing: run make image-stage first" >&2; exit 1; }
	podman build --network host -f deploy/Containerfile -t $(IMAGE) $(IMAGE_DIR)

test-container: deps-deploy bpf $(DEPLOY_VENV)/.installed ## podman image build and run, podman-compose stack with PostgreSQL (root; several minutes)
	SWIFT_FLAGS="$(SWIFT_FLAGS)" $(DEPLOY_VENV)/bin/python -m pytest -q -rs Tests/deploy/test_container.py Tests/deploy/test_compose.py
