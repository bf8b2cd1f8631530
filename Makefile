# volgw — see README.md. `make test` is what CI runs (.ci/run).
GO ?= go
export PATH := $(shell $(GO) env GOPATH)/bin:$(PATH)

.PHONY: test test-deps test-long bench bench-deps build vet fuzz

# The version a build reports (volgw version, DescribeGatewayInformation's
# SoftwareVersion): the nearest tag, commits since and -dirty, as git says.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/volgw ./cmd/volgw

test-deps:
	./scripts/install-test-deps.sh

vet:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

test: test-deps vet
	$(GO) test -count=1 -timeout 28m ./...

# Long runs: thousands of crash cycles, fuzzing for minutes. Not in CI.
test-long: test-deps
	VOLGW_LONG=1 $(GO) test -count=1 -timeout 120m ./...

# Bench-only peers (s3backer, nbdkit's S3 plugin); never needed by the tests.
bench-deps:
	./scripts/install-bench-deps.sh

# Every bench/*.sh, one after the other (about 25 minutes; product.sh and
# peers.sh need root).
bench: test-deps bench-deps
	./bench/run.sh

# Every fuzz target, FUZZTIME each (go test runs one -fuzz target at a time).
FUZZTIME ?= 1m
FUZZ_TARGETS = internal/iscsi:FuzzPDU internal/iscsi:FuzzTextNegotiation internal/iscsi:FuzzSession \
	internal/scsi:FuzzExecute internal/awsproto:FuzzValidate internal/awsproto:FuzzVerifySigV4 \
	internal/volume:FuzzDecodeRoot internal/volume:FuzzDecodePage
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	done
