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
# handler, SQLite beside PostgreSQL (a throwaway cluster), and a console
# with 50 agents; writes BENCHMARKS.md (about 8 minutes on 2 cores; root
# for the enforcer, store, commit, datapath, PUT and fleet parts, which run
# in network namespaces they create).
# Not part of `make test`. The Go benchmarks' exit status is kept through
# the pipe to tee: a failed benchmark stops the report, and the report
# prints the command that ran them.
bench: deps build
	@out=$$(mktemp) && \
	gobench="go test -run '^$$' -bench . -benchtime 20x -count 5 ./enforcer ./store && go test -run '^$$' -bench LoggedConnections -benchtime 1x ./packetlog" && \
	echo "$$gobench" && \
	{ sh -c "$$gobench"; echo $$? >$$out.rc; } 2>&1 | tee $$out && \
	[ "$$(cat $$out.rc)" = 0 ] && \
	go run ./bench/cmd/benchreport -gobench $$out -gobench-cmd "$$gobench" -bin bin/rampart -out BENCHMARKS.md; \
	rc=$$?; rm -f $$out $$out.rc; exit $$rc

# Load and crash harness (not part of `make test`): 200 clients for 60 s
# against one console; again with a SIGKILL half-way, enforcing in a
# namespace as root; then, as root, two consoles on one PostgreSQL (a
# throwaway cluster) with the load split across them, each enforcing its
# host in a namespace, and an agent given both: the console it follows is
# killed half-way. Every run's figures go to SOAK.md, written only when
# every run passed.
soak: build
	CGO_ENABLED=0 go build -o bin/rampart-soak ./cmd/rampart-soak
	rm -f SOAK.md.tmp
	bin/rampart-soak -clients 200 -duration 60s -report SOAK.md.tmp
	bin/rampart-soak -clients 200 -duration 60s -crash $$([ "$$(id -u)" = 0 ] && echo -netns) -report SOAK.md.tmp
	@if [ "$$(id -u)" = 0 ]; then \
		echo bin/rampart-soak -clients 200 -duration 60s -consoles 2 -report SOAK.md.tmp; \
		bin/rampart-soak -clients 200 -duration 60s -consoles 2 -report SOAK.md.tmp; \
	else \
		printf '## Two consoles on one PostgreSQL\n\nNot run: it needs root (network namespaces).\n' | tee -a SOAK.md.tmp; \
	fi
	mv SOAK.md.tmp SOAK.md
