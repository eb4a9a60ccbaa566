# secretfs: see README.md. Tests mount real FUSE filesystems: run as root.
GO        ?= go
BIN       ?= bin/secretfs
DEMO_DIR  ?= /tmp/secretfs-demo
# A cold build of kube-apiserver/etcd for the integration tests takes
# ~11 minutes on 2 cores; go test's default 10 minute timeout is too short.
TEST_TIMEOUT ?= 45m

.PHONY: build test unit vet demo sanity e2e bench fuzz clean

build:
	$(GO) build -o $(BIN) ./cmd/secretfs

vet:
	$(GO) vet ./...

# Every test: unit, real FUSE mounts, csi-sanity, real kube-apiserver + etcd.
test: vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

# Fast tests only (no control plane).
unit:
	$(GO) test -count=1 -short ./...

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
	./csi:FuzzParseAttributes ./volume:FuzzItems
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "== $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./bench/

# Mounts mysecret from the example manifests, lists it and reads username.
demo: build
	./scripts/demo.sh $(BIN) $(DEMO_DIR)

clean:
	rm -rf bin
