# jackin — build, test and demo targets. `make help` lists them.
GO        ?= go
BIN       := bin/jackin
PKGS      := ./...
export CGO_ENABLED ?= 0

.PHONY: help engine build test unit e2e lint fuzz demo demo-clean bench clean

help: ## list targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

engine: ## make sure a Docker engine answers (installs and starts one on Debian if needed)
	@bash .ci/ensure-engine

# One source ID for both builds of make build (the commit and a hash of the
# uncommitted changes): it is in the link flags Go records, which jackin
# compares before its containers run the Linux build.
SOURCE_ID := $(shell git rev-parse --short=12 HEAD 2>/dev/null)-$(shell { git status --porcelain; git diff HEAD; } 2>/dev/null | sha256sum | cut -c1-12)
LDFLAGS   := -X main.sourceID=$(SOURCE_ID)

build: ## build bin/jackin (off Linux also bin/jackin-linux-ARCH, the build its containers run)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/jackin
	@# Containers run a static Linux jackin (the agents' supervisor, the
	@# egress proxy): off Linux (macOS: OrbStack, Docker Desktop) it is a
	@# second build of the same tree, kept beside bin/jackin.
	@os=$$($(GO) env GOOS); arch=$$($(GO) env GOARCH); if [ "$$os" != linux ]; then \
	  echo "$(GO) build linux/$$arch -o bin/jackin-linux-$$arch"; \
	  GOOS=linux GOARCH=$$arch $(GO) build -ldflags '$(LDFLAGS)' -o bin/jackin-linux-$$arch ./cmd/jackin; fi

test: lint ## lint, then every test: unit and end-to-end (starts an engine if it can; CI=true makes the engine required)
	@bash .ci/ensure-engine || { [ "$${CI:-}" != "true" ] && echo "warning: no Docker engine: end-to-end tests will skip"; }
	@bash .ci/ensure-test-tools || [ "$${CI:-}" != "true" ]
	@# The Kubernetes backend's test cluster (binaries cached outside the
	@# clone: seconds once built), torn down whatever the tests did.
	@bash test/harness/kube/cluster.sh up || [ "$${CI:-}" != "true" ]
	@rc=0; $(GO) test -count=1 -timeout 40m $(PKGS) || rc=$$?; bash test/harness/kube/cluster.sh down; exit $$rc

unit: ## unit tests only (no engine needed)
	$(GO) test -count=1 -short $(PKGS)

e2e: ## end-to-end tests only, against the local engine
	@bash .ci/ensure-test-tools || true
	$(GO) test -count=1 -timeout 40m -v ./test/e2e/

lint: ## gofmt check and go vet (for Linux and for macOS, where OrbStack runs)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	GOOS=darwin GOARCH=arm64 $(GO) vet $(PKGS)

fuzz: ## fuzz the manifest loader for 5 minutes
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime $${FUZZTIME:-5m} ./manifests/

examples/offline/role/agent-bin: $(wildcard examples/offline/role/agent/*.go)
	$(GO) build -trimpath -ldflags='-s -w' -o $@ ./examples/offline/role/agent

demo: engine build examples/offline/role/agent-bin ## apply the offline example fleet to the local engine
	$(BIN) apply -f examples/offline
	$(BIN) get -f examples/offline

demo-clean: build ## remove the demo fleet from the engine
	$(BIN) delete --fleet demo

BENCH     ?= .

bench: engine build examples/offline/role/agent-bin ## benchmarks against docker-compose and raw engine calls (BENCH=regexp picks some)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime 1x -timeout 60m -v ./bench/

clean: ## remove build outputs
	rm -rf bin examples/offline/role/agent-bin
