# Rampart: `make run` starts the console, `make test` installs what is
# missing and runs every test.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
DB ?= data/rampart.db
LISTEN ?= 127.0.0.1:8080

.PHONY: run build test unit unit-postgres e2e bench generate deps lint soak differential

build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/rampart ./cmd/rampart

run: build
	./bin/rampart serve --db $(DB) --listen $(LISTEN) --enforcer auto

deps:
	./scripts/install-deps.sh

generate:
	go tool templ generate

# gofmt, go vet, and generated templ code matching its sources.
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	go tool templ generate >/dev/null
	@git diff --exit-code --stat -- '*_templ.go' || { echo "generated templ code was stale: run make generate and commit"; exit 1; }

# Every test: store, API (with the official SDK), console, enforcer in
# network namespaces (root), and the browser suite, on SQLite; then the
# store and web suites again on PostgreSQL (a throwaway cluster each test
# binary starts and removes; see internal/testdb).
test: deps lint build
	RAMPART_BIN=$(CURDIR)/bin/rampart go test -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory unit-postgres

unit:
	go test -count=1 ./store ./web

unit-postgres:
	RAMPART_TEST_ENGINE=postgres go test -count=1 -timeout 10m ./store ./web

e2e: deps build
	RAMPART_BIN=$(CURDIR)/bin/rampart go test -count=1 -timeout 15m -v ./e2e

# The packet tester (package explain) against the kernel, larger than in
# `make test`: 10,000 packets through random groups that the enforcer
# applies in network namespaces (root). RAMPART_DIFFERENTIAL_PACKETS and
# RAMPART_DIFFERENTIAL_SEED change the size and replay a run.
differential: deps
	RAMPART_DIFFERENTIAL_PACKETS=$${RAMPART_DIFFERENTIAL_PACKETS:-10000} \
		go test -count=1 -timeout 30m -run '^TestDifferentialKernel$$' -v ./explain

# Benchmarks, side by side with nft -f, iptables-restore and a bare Echo
# handler; writes BENCHMARKS.md (about 5 minutes; root for the enforcer,
# datapath and PUT parts, which run in network namespaces they create).
# Not part of `make test`. The Go benchmarks' exit status is kept through
# the pipe to tee: a failed benchmark stops the report, and the report
# prints the command that ran them.
bench: deps build
	@out=$$(mktemp) && \
	gobench="go test -run '^$$' -bench . -benchtime 20x -count 5 ./enforcer ./store" && \
	echo "$$gobench" && \
	{ sh -c "$$gobench"; echo $$? >$$out.rc; } 2>&1 | tee $$out && \
	[ "$$(cat $$out.rc)" = 0 ] && \
	go run ./bench/cmd/benchreport -gobench $$out -gobench-cmd "$$gobench" -bin bin/rampart -out BENCHMARKS.md; \
	rc=$$?; rm -f $$out $$out.rc; exit $$rc

# Load and crash harness (not part of `make test`): 200 clients for 60 s,
# then the same with a SIGKILL half-way, enforcing in a namespace as root.
soak: build
	CGO_ENABLED=0 go build -o bin/rampart-soak ./cmd/rampart-soak
	bin/rampart-soak -clients 200 -duration 60s
	bin/rampart-soak -clients 200 -duration 60s -crash $$([ "$$(id -u)" = 0 ] && echo -netns)
