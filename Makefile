# Everyday commands. `make` runs the tests.

GO ?= go

.PHONY: all test bench bench-sqs bench-peers bench-dashboard screenshots lint fmt cover

all: test

## test: run every test with the race detector, uncached
test:
	$(GO) test -race -count=1 ./...

## bench: run the benchmarks (no tests), with allocation counts
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

## bench-sqs: the SQS facade through the AWS Go SDK on SQLite, 100,000 messages
## received and deleted by 32 pollers (docs/benchmarks.md)
bench-sqs:
	$(GO) test -run='^$$' -bench=SQSReceiveDelete -benchtime=1x ./server/sqs

## bench-peers: Spool side by side with River, Asynq, goqite and NATS JetStream
## (needs PostgreSQL, Redis and NATS on 127.0.0.1; about 7 minutes on 2 cores);
## writes docs/benchmarks-peers.md and docs/benchmarks.png
bench-peers:
	cd bench && $(GO) run ./cmd/peers -out ../docs -command 'make bench-peers'

## bench-dashboard: every dashboard page's server time over 1,000,000 jobs
## (seeds them first: about a minute; SPOOL_BENCH_DB=FILE keeps the store)
bench-dashboard:
	$(GO) test ./server -run='^$$' -bench=BenchmarkDashboardPages -benchtime=10x -timeout=60m

## screenshots: rewrite docs/screenshots from the dashboard in headless Chromium
screenshots:
	SPOOL_SCREENSHOTS=1 $(GO) test ./server -count=1 -run='^TestScreenshots$$'

## lint: gofmt check, go vet, and golangci-lint when installed
lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt needed on:"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...
	@if command -v golangci-lint >/dev/null 2>&1; then \
		golangci-lint run ./...; \
	else \
		echo "golangci-lint not installed; skipped"; \
	fi

## fmt: format the code in place
fmt:
	gofmt -w .

## cover: test with coverage and write coverage.html
cover:
	$(GO) test -race -count=1 -coverprofile=coverage.out ./...
	$(GO) tool cover -html=coverage.out -o coverage.html
