# `make run` and `make test` work on a fresh Debian machine with Go: without
# DATABASE_URL they start a private PostgreSQL (scripts/pg.sh).
GO ?= go
DATA_DIR ?= .data
GOLANGCI_LINT_VERSION ?= v2.6.2

.PHONY: run test test-short bench lint build

build:
	$(GO) build -o bin/authledger ./cmd/authledger

run:
	@if [ -n "$$DATABASE_URL" ]; then \
		$(GO) run ./cmd/authledger serve; \
	else \
		DATABASE_URL=$$(scripts/pg.sh start $(DATA_DIR)/pg) && export DATABASE_URL && \
		echo "authledger: PostgreSQL in $(DATA_DIR)/pg ($$DATABASE_URL); stop it with scripts/pg.sh stop $(DATA_DIR)/pg" && \
		AUTHLEDGER_DATA_DIR=$${AUTHLEDGER_DATA_DIR:-$(DATA_DIR)} $(GO) run ./cmd/authledger serve; \
	fi

test:
	@if [ -n "$$DATABASE_URL" ]; then \
		$(GO) test -race -count=1 ./...; \
	else \
		scripts/pg.sh with-temp $(GO) test -race -count=1 ./...; \
	fi

bench:
	@if [ -n "$$DATABASE_URL" ]; then \
		$(GO) run ./cmd/authledger bench; \
	else \
		PG_MODE=durable scripts/pg.sh with-temp $(GO) run ./cmd/authledger bench; \
	fi

lint:
	$(GO) vet ./...
	@command -v golangci-lint >/dev/null 2>&1 || $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" golangci-lint run ./...
