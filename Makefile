# FabGate — the Makefile is the source of truth for building, running and testing.
GO       ?= go
# Every target runs the Go named by go.mod's toolchain line: a machine comes with its own Go
# and ignores that line, so it is exported here, and the go command fetches that version
# from the Go module proxy once (into the module cache). GOTOOLCHAIN=local uses the machine's.
export GOTOOLCHAIN ?= $(shell sed -n 's/^toolchain //p' go.mod)
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
TESTFLAGS ?=
# How long `make fuzz` runs each fuzzer.
FUZZTIME ?= 5s
# staticcheck is run at this pinned version with `go run`, so `make lint` needs only Go
# (the first run downloads and builds it; later runs use the Go build cache).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# govulncheck reads a database built from this snapshot of the Go vulnerability database
# (the golang.org/x/vulndb module, from the Go module proxy); bump the version to update it.
GOVULNCHECK ?= golang.org/x/vuln/cmd/govulncheck@v1.9.0
VULNDB      ?= golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018
VULNDB_DIR  ?= $(shell $(GO) env GOCACHE)/fabgate-vulndb/$(lastword $(subst @, ,$(VULNDB)))

.PHONY: all build cross run test bench lint vuln fuzz assets e2e soak soak-model clean help

all: build cross

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/fabgate and bin/fabgate-bridge
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/fabgate ./cmd/fabgate
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/fabgate-bridge ./firmware-bridge

cross: ## cross-compile fabgate-bridge for the Raspberry Pi: bin/fabgate-bridge-linux-arm64 and -linux-armv7
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/fabgate-bridge-linux-arm64 ./firmware-bridge
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/fabgate-bridge-linux-armv7 ./firmware-bridge

run: build ## run the demo lab on http://127.0.0.1:8080 (data in ./data)
	./bin/fabgate serve --demo --data data

test: ## run every test with the race detector
	$(GO) test -race -count=1 -timeout 15m $(TESTFLAGS) ./...

e2e: ## run the end-to-end tests only
	$(GO) test -race -count=1 -run 'E2E' ./cmd/...

soak: ## the crash loop at length: fabgate serve killed (SIGKILL) 1000 times under load; FABGATE_CRASH_SEED=n replays a run
	FABGATE_CRASH_ITERATIONS=$${FABGATE_CRASH_ITERATIONS:-1000} $(GO) test -race -count=1 -timeout 90m -v -run '^TestCrashLoopE2E$$' ./cmd/fabgate/

# How many random labs `make soak-model` runs (make test runs 30).
MODEL_CHECKS ?= 1000
soak-model: ## the model-based test of the whole lab at length: MODEL_CHECKS (1000) random labs; -rapid.seed=n replays one
	$(GO) test -race -count=1 -timeout 3h -v -run '^TestLabModel$$' ./internal/lab/ -rapid.checks=$(MODEL_CHECKS)

# The benchmarks' raw output goes to bin/bench.txt, then bench/benchtable lays out every
# figure beside its baseline, their ratio and its target (bin/bench-table.txt). A missed
# target is in the table; only a failed benchmark fails the target. The heavy benchmarks
# (reports, 200 devices, server memory) take longer than -benchtime at their least and
# run once; the whole takes about 10-15 minutes on 2 cores.
bench: ## run the benchmarks and print one table: each figure, its baseline measured in the same run, ratio, target
	@mkdir -p bin
	@{ $(GO) test -run '^$$' -bench . -benchtime 2s -count 1 -timeout 40m ./bench/ 2>&1; echo $$? > bin/bench.status; } | tee bin/bench.txt
	@$(GO) run ./bench/benchtable < bin/bench.txt > bin/bench-table.txt && cat bin/bench-table.txt
	@exit $$(cat bin/bench.status)

lint: ## go vet, staticcheck, gofmt and go mod tidy must be clean
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@cp go.mod /tmp/fabgate-go.mod.bak && cp go.sum /tmp/fabgate-go.sum.bak && $(GO) mod tidy && \
	  if ! git diff --quiet -- go.mod go.sum; then echo "go mod tidy changed go.mod/go.sum"; git diff -- go.mod go.sum; \
	  cp /tmp/fabgate-go.mod.bak go.mod; cp /tmp/fabgate-go.sum.bak go.sum; exit 1; fi

vuln: ## govulncheck against the vulnerability database snapshot pinned in VULNDB
	GO=$(GO) ./scripts/vulndb.sh $(VULNDB) $(VULNDB_DIR)
	$(GO) run $(GOVULNCHECK) -db file://$(VULNDB_DIR) ./...

fuzz: ## run every fuzzer for FUZZTIME each (5s); FUZZ_SAVE=1 adds what they found to the packages' testdata/fuzz
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

assets: ## vendor the browser libraries listed in web/vendor.txt from the npm registry
	./web/vendor.sh

clean: ## remove build output
	rm -rf bin
