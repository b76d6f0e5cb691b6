# Sombra — build, test and demo targets. Everything runs from a fresh clone
# with only Go installed (and jq for the CLI pipe tests, which .ci/run installs).
GO       ?= go
BIN      ?= bin
TOOLS    := sombra-backup sombra-checkpoint sombra-compact sombra-health-check sombra-info sombra-repair sombra-server
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
# SOURCE_DATE_EPOCH (reproducible builds) fixes the build date when set.
BUILD_DATE ?= $(shell date -u -d @$${SOURCE_DATE_EPOCH:-$$(date +%s)} +%Y-%m-%dT%H:%M:%SZ)
CLIPKG   := github.com/sombradb/sombra/internal/cli
LDFLAGS  := -X $(CLIPKG).Version=$(VERSION) -X $(CLIPKG).Commit=$(COMMIT) -X $(CLIPKG).BuildDate=$(BUILD_DATE)
PREFIX   ?= /usr/local
DESTDIR  ?=
DEMO     ?= demo
FUZZTIME ?= 30s
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all build install test test-race fuzz bench bench-peers demo demo-cluster nats-server man man-check lint cross ci clean crash-long

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(TOOLS))
	$(GO) build -o $(BIN)/gendata ./scripts/gendata

# The test command README gives and CI runs: lint, unit + crash + model +
# fault-injection + CLI tests (fuzz seed corpora run as ordinary tests),
# the race detector over the engine, and the guide's scripts end to end.
test: lint man-check
	$(GO) test -count=1 -timeout 15m ./...
	$(GO) test -count=1 -race -timeout 15m ./engine/...
	cd bench && $(GO) test -count=1 ./...
	$(MAKE) --no-print-directory demo DEMO=$$(mktemp -d)/demo

test-race:
	$(GO) test -race ./...

# Longer fuzzing of every decoder (make fuzz FUZZTIME=5m).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run XXX -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# The power-loss tests (vfs.CrashFS) with CRASH_SCALE times the cuts and
# commits of CI's run; SOMBRA_POWERLOSS_SEED=N replays a logged seed.
CRASH_SCALE ?= 20
crash-long:
	SOMBRA_POWERLOSS_SCALE=$(CRASH_SCALE) $(GO) test -count=1 -timeout 120m -v \
	  -run 'TestPowerLoss|TestCrashFS' ./engine/ ./engine/vfs/

# Engine micro-benchmarks.
bench:
	$(GO) test -run XXX -bench . -benchtime 1x ./engine/...

# Sombra against SQLite and bbolt on the same workload (see bench/RESULTS.md):
# 20K/100K and 200K/1M; BIG=1 adds 1M/5M. Each prints per-workload times,
# peak RSS per phase and the ratios between engines.
bench-peers:
	cd bench && $(GO) build -o $(abspath $(BIN))/graphbench ./cmd/graphbench
	$(abspath $(BIN))/graphbench -nodes 20000 -edges 100000
	$(abspath $(BIN))/graphbench -nodes 200000 -edges 1000000
	@if [ -n "$(BIG)" ]; then $(abspath $(BIN))/graphbench -nodes 1000000 -edges 5000000; fi

# The demo: build the tools, generate a sample graph, run the guide's
# maintenance script on it, then show sombra-info and the backup list.
demo: build
	@rm -rf $(DEMO) && mkdir -p $(DEMO)/backups
	$(BIN)/gendata -nodes 20000 -edges 80000 -seed 7 -delete-pct 40 -out $(DEMO)/graph.db
	@# Low thresholds so the demo shows every step: checkpoint and compaction.
	PATH="$(CURDIR)/$(BIN):$$PATH" DB_PATH=$(DEMO)/graph.db BACKUP_DIR=$(DEMO)/backups \
	  LOG_FILE=$(DEMO)/maintenance.log WAL_LIMIT=1048576 FRAG_LIMIT=5 bash scripts/maintenance.sh
	@# A second day: the compacted file has a new identity, so the backup chain starts over.
	PATH="$(CURDIR)/$(BIN):$$PATH" DB_PATH=$(DEMO)/graph.db BACKUP_DIR=$(DEMO)/backups \
	  LOG_FILE=$(DEMO)/maintenance.log WAL_LIMIT=1048576 FRAG_LIMIT=5 bash scripts/maintenance.sh
	@# The script is quiet on success (fit for cron); its log tells what it did.
	cat $(DEMO)/maintenance.log
	$(BIN)/sombra-info --db $(DEMO)/graph.db
	$(BIN)/sombra-backup list --dir $(DEMO)/backups

# Beyond one machine: nats-server (built from the module's own dependency)
# and three sombra-server instances on loopback; writes through
# cluster.LoadBalancer, SIGKILL of the primary, failover (README).
DEMO_CLUSTER ?= demo-cluster
demo-cluster: build nats-server
	$(GO) run ./scripts/democluster -bin $(BIN) -dir $(DEMO_CLUSTER)

nats-server:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/nats-server github.com/nats-io/nats-server/v2

# Install the tools, their man pages and shell completions (bash, zsh, fish)
# under $(DESTDIR)$(PREFIX): make install PREFIX=$$HOME/.local
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0755 $(addprefix $(BIN)/,$(TOOLS)) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	@set -e; for t in $(TOOLS); do \
	  $(BIN)/$$t completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$t; \
	  $(BIN)/$$t completion zsh  > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$$t; \
	  $(BIN)/$$t completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$t.fish; \
	done
	@echo "installed $(TOOLS) under $(DESTDIR)$(PREFIX)"

man:
	$(GO) run ./cmd/sombra-man -out man

man-check:
	$(GO) test -count=1 -run TestManPagesFresh ./internal/commands/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	$(MAKE) --no-print-directory cross

# The engine runs on Linux only (README, "Platforms"), but every package
# must keep compiling for macOS and FreeBSD, where opening a database fails
# with ErrUnsupported.
cross:
	GOOS=darwin $(GO) build ./...
	GOOS=freebsd $(GO) build ./...

ci: test

clean:
	rm -rf $(BIN) demo
