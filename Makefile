# vane's build. `make run` and `make test` install whatever is missing first
# (toolchains and artifacts go in .tools/, pinned and cached), so they work on a
# fresh machine that has only Go, git, gcc, node/npm and apt.
SHELL := /bin/bash
.DEFAULT_GOAL := build

TOOLS_DIR := $(CURDIR)/.tools
export VANE_TOOLS_DIR := $(TOOLS_DIR)
GO ?= go
BIN := $(CURDIR)/bin/vane

# Each fragment in mk/ adds its install targets to DEPS (what run and test need).
DEPS :=
include $(sort $(wildcard mk/*.mk))

.PHONY: build deps run test test-short bench bench-all check fmt

build:
	$(GO) build -o $(BIN) ./cmd/vane

deps: $(DEPS)

run: deps build
	$(BIN) serve --data-dir ./vane-data --http-addr :8000

# Every test: vet, the race detector over every package, the end-to-end tests
# (they start the real binary) and a short fuzz run of the command decoder.
test: deps
	$(GO) vet ./...
	$(GO) test -race -timeout 25m ./...
	$(MAKE) fuzz-short

test-short: deps
	$(GO) test -short ./...

# The README's figures: runs the benchmarks it quotes (about 15 minutes on 2
# cores, each run bounded) and rewrites its table with the date, the commit
# and the load average. bench-all runs every benchmark once.
bench: deps
	$(GO) run ./tools/benchfig -readme README.md

bench-all: deps
	$(GO) test -run '^$$' -bench . -benchtime 2s -timeout 30m ./bench/... ./raftstore/... ./runtime/...

check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) test -run TestDependencyRules .
	$(GO) mod tidy && git diff --exit-code go.mod go.sum
	@test -z "$$(git status --porcelain)" || { echo "the tree is dirty:"; git status --short; exit 1; }

fmt:
	gofmt -w $$(git ls-files '*.go')
