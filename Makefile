# `make run` and `make test` work on a fresh Debian machine with Go: without
# DATABASE_URL they start a private PostgreSQL (scripts/pg.sh), and `make
# test` a private redis-server (scripts/redis.sh) and nats-server
# (scripts/nats.sh); both make sure
# tesseract, the OCR engine of the task worker, is installed
# (scripts/tesseract.sh; `make run` skips it with AUTHLEDGER_WORKERS=0);
# `make test` also Debian's chromium, the browser of the console's
# browser tests (scripts/chromium.sh).
GO ?= go
DATA_DIR ?= .data
# Pinned: builds with Go 1.26 and understands its syntax. `make lint`
# installs it into bin/ when bin/golangci-lint is absent or another version.
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT := $(CURDIR)/bin/golangci-lint
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

.PHONY: run test test-short bench lint build build-bench

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/authledger ./cmd/authledger

# The benchmarks are a binary of their own (ADR 0024); the sections that
# measure the assembled service run bin/authledger beside it.
build-bench: build
	$(GO) build -o bin/authledger-bench ./cmd/authledger-bench

run:
	@if [ "$${AUTHLEDGER_WORKERS:-1}" != 0 ]; then scripts/tesseract.sh; fi
	@if [ -n "$$DATABASE_URL" ]; then \
		$(GO) run -ldflags "-X main.version=$(VERSION)" ./cmd/authledger serve; \
	else \
		DATABASE_URL=$$(scripts/pg.sh start $(DATA_DIR)/pg) && export DATABASE_URL && \
		echo "authledger: PostgreSQL in $(DATA_DIR)/pg ($$DATABASE_URL); stop it with scripts/pg.sh stop $(DATA_DIR)/pg" && \
		AUTHLEDGER_DATA_DIR=$${AUTHLEDGER_DATA_DIR:-$(DATA_DIR)} $(GO) run -ldflags "-X main.version=$(VERSION)" ./cmd/authledger serve; \
	fi

# The rate-limit tests (and the limits bench row) need a redis-server as the
# others need PostgreSQL:
# AUTHLEDGER_TEST_REDIS_URL when set, else a throwaway one (scripts/redis.sh).
REDIS_FOR_TESTS = $$(if [ -z "$$AUTHLEDGER_TEST_REDIS_URL" ]; then echo scripts/redis.sh with-temp; fi)
# The analytics stream's tests (and the stream bench section) need a
# nats-server with JetStream the same way: AUTHLEDGER_TEST_NATS_URL when
# set, else a throwaway one (scripts/nats.sh).
NATS_FOR_TESTS = $$(if [ -z "$$AUTHLEDGER_TEST_NATS_URL" ]; then echo scripts/nats.sh with-temp; fi)

test:
	@scripts/tesseract.sh
	@scripts/chromium.sh >/dev/null
	@if [ -n "$$DATABASE_URL" ]; then \
		$(REDIS_FOR_TESTS) $(NATS_FOR_TESTS) $(GO) test -race -count=1 ./...; \
	else \
		$(REDIS_FOR_TESTS) $(NATS_FOR_TESTS) scripts/pg.sh with-temp $(GO) test -race -count=1 ./...; \
	fi

bench: build-bench
	@if [ -n "$$DATABASE_URL" ]; then \
		$(REDIS_FOR_TESTS) $(NATS_FOR_TESTS) bin/authledger-bench $(BENCH_FLAGS); \
	else \
		PG_MODE=durable $(REDIS_FOR_TESTS) $(NATS_FOR_TESTS) scripts/pg.sh with-temp bin/authledger-bench $(BENCH_FLAGS); \
	fi

lint:
	$(GO) vet ./...
	@if [ "$$($(GOLANGCI_LINT) version --short 2>/dev/null)" != "$(patsubst v%,%,$(GOLANGCI_LINT_VERSION))" ]; then \
		echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) into bin/"; \
		GOBIN=$(CURDIR)/bin $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); \
	fi
	$(GOLANGCI_LINT) run ./...
