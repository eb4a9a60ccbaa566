# secretfs: see README.md. Tests mount real FUSE filesystems: run as root.
GO        ?= go
BIN       ?= bin/secretfs
DEMO_DIR  ?= /tmp/secretfs-demo
# A cold build of kube-apiserver/etcd for the integration tests takes
# ~11 minutes on 2 cores; go test's default 10 minute timeout is too short.
TEST_TIMEOUT ?= 45m

.PHONY: build test unit vet demo sanity e2e bench clean helm crds deploy helm-lint

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

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./bench/

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
