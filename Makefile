# secretfs: see README.md. Tests mount real FUSE filesystems: run as root.
SHELL    := /bin/bash
GO        ?= go
BIN       ?= bin/secretfs
DEMO_DIR  ?= /tmp/secretfs-demo
# A cold build of kube-apiserver/etcd for the integration tests takes
# ~11 minutes on 2 cores; go test's default 10 minute timeout is too short.
TEST_TIMEOUT ?= 45m

.PHONY: build release cross-vet test test-unit unit vet lint demo sanity e2e bench bench-docs fuzz clean helm crds deploy helm-lint

build:
	$(GO) build -o $(BIN) ./cmd/secretfs

# The systems the workstation tool (env, exec, version) is built for
# besides linux/amd64; on macOS and Windows mount, csi and keeper refuse
# in one line (they need FUSE).
CROSS ?= linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
RELEASE_TARGETS ?= linux/amd64 $(CROSS)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# bin/release/secretfs-OS-ARCH[.exe] for each target, static, with
# VERSION stamped (secretfs version prints it), and their SHA256SUMS.
release:
	@rm -rf bin/release && mkdir -p bin/release
	@set -e; for t in $(RELEASE_TARGETS); do \
		os=$${t%/*}; arch=$${t#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		out=bin/release/secretfs-$$os-$$arch$$ext; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '-s -w -X main.version=$(VERSION)' -o $$out ./cmd/secretfs; \
		echo "$$out"; \
	done
	cd bin/release && sha256sum secretfs-* > SHA256SUMS

vet:
	$(GO) vet ./...

# go vet, per CROSS target, of cmd/secretfs and every package of ours it
# imports there, tests included, so a Linux-only call in them fails here
# (the Linux-only packages and test files carry //go:build linux). The
# dependencies compile once per target into the build cache: measured on
# 2 shared cores, 4.4 s with a warm cache, 400 s with an empty one.
cross-vet:
	@set -e; for t in $(CROSS); do \
		export GOOS=$${t%/*} GOARCH=$${t#*/} CGO_ENABLED=0; \
		echo "go vet ($$t) of cmd/secretfs and our packages it imports"; \
		$(GO) vet $$($(GO) list -deps -f '{{if .Module}}{{if .Module.Main}}{{.ImportPath}}{{end}}{{end}}' ./cmd/secretfs); \
	done

# go vet and staticcheck (all default checks, U1000 unused code among them)
# over our packages; third_party/ is a replaced module, so ./... leaves it out.
STATICCHECK_VERSION ?= v0.8.2
TOOLS ?= /var/cache/secretfs/tools
STATICCHECK ?= $(TOOLS)/staticcheck
lint: vet cross-vet
	@[ -x $(STATICCHECK) ] && $(STATICCHECK) -version | grep -q '$(STATICCHECK_VERSION:v%=%)' || \
		GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(STATICCHECK) ./...

# Every test: unit, real FUSE mounts, csi-sanity, real kube-apiserver + etcd.
# It needs root: as root no FUSE test may skip (sanity/needroot fails them
# instead), so refuse to run where they all would. go test -json goes
# through sanity/testsummary, which prints what a plain go test prints (ok
# or FAIL per package, the output of failed tests) and then a SKIPPED line
# naming every test that skipped, with the reasons; the whole stream is
# kept in $(TEST_JSON). The exit status is go test's.
TEST_JSON ?= bin/test.json
test: lint
	@[ "$$(id -u)" = 0 ] || { echo "make test needs root (FUSE mounts); run make test-unit as a regular user" >&2; exit 1; }
	@mkdir -p bin $(dir $(TEST_JSON)) && $(GO) build -o bin/testsummary ./sanity/testsummary
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -json ./... 2>&1 | bin/testsummary -json $(TEST_JSON); \
		s=($${PIPESTATUS[@]}); [ $${s[0]} = 0 ] || exit $${s[0]}; exit $${s[1]}

# What needs no privileges: as a regular user every FUSE test prints one
# "SKIP (needs root: ...)" line. -short leaves out the control plane too.
test-unit:
	$(GO) test -count=1 -short -v ./... 2>&1 | grep -E '^(ok|FAIL|---|panic)|SKIP \(needs root' ; exit $${PIPESTATUS[0]}

unit: test-unit

sanity:
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -v ./sanity/csisanity/

# A real node: kubelet + containerd run the seed's Pods with secretfs volumes
# beside kubelet's own secret volume (sanity/node harness).
e2e:
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -v ./e2e/

# Each fuzz target for FUZZTIME; `go test` alone runs their checked-in
# corpora (testdata/fuzz/), so CI replays every input found so far.
FUZZTIME ?= 60s
FUZZ_TARGETS ?= ./manifest:FuzzYAMLToJSON ./secret:FuzzParseManifests \
	./csi:FuzzParseAttributes ./csi:FuzzParseSources ./keeper/wire:FuzzRead ./keeper/wire:FuzzBlobs ./projection:FuzzItems
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "== $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# Benchmarks: tables on stdout and in $(BENCH_OUT)/bench.txt, figures
# beside them ($(BENCH_OUT)/*.png, drawn from the *.json next to them by
# bench/benchplot). BENCH picks benchmarks (go test -bench), e.g.
# make bench BENCH='Read|UpdateLatency'.
BENCH     ?= .
BENCH_OUT ?= bin/bench
bench: build
	@mkdir -p $(BENCH_OUT)
	SECRETFS_BENCH_OUT=$(abspath $(BENCH_OUT)) $(GO) test -run '^$$' -bench '$(BENCH)' -benchtime 2s ./bench/ | tee $(BENCH_OUT)/bench.txt; \
		exit $${PIPESTATUS[0]}

# docs/bench (shown by README.md, described in docs/BENCHMARKS.md): the
# figures of $(BENCH_OUT), their JSON copied and their PNGs drawn again
# from it. Run after make bench (and the e2e side-by-side latency test,
# which adds kubelet's own volume to the update latency CDF).
bench-docs:
	@mkdir -p docs/bench
	cp $(BENCH_OUT)/*.json docs/bench/
	$(GO) run ./bench/benchplot/cmd/benchplot docs/bench

# Mounts mysecret from the example manifests, lists it and reads username.
demo: build
	./scripts/demo.sh $(BIN) $(DEMO_DIR)

# The Helm chart (deploy/chart/secretfs) is the one source of deploy/*.yaml.
# helm v3.22.0 is built once from the Go module proxy into /var/cache/secretfs.
helm:
	bash deploy/build-helm.sh >/dev/null

# Copies the SecretProviderClass CRD from sigs.k8s.io/secrets-store-csi-driver
# (module cache) into the chart.
crds:
	bash deploy/chart.sh crds

# Renders deploy/*.yaml from the chart with default values (CI checks that
# they are up to date: deploy/deploy_test.go).
deploy: crds
	bash deploy/chart.sh manifests

# helm lint --strict and helm template, default values and ci/*-values.yaml
# (also run by `make test`, in deploy/deploy_test.go).
helm-lint:
	bash deploy/chart.sh lint

clean:
	rm -rf bin
