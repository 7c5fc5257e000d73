# Lifeline — developer commands. `make test` is the whole suite CI runs.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Debian packages of the real peers the tests talk to.
PEER_PACKAGES := dcmtk orthanc orthanc-dicomweb orthanc-postgresql chromium socat gpsd-clients ffmpeg iproute2 nftables postgresql strace
PEER_PROGRAMS := storescu Orthanc chromium socat gpsfake ffmpeg ip nft strace
FUZZTIME ?= 5s
# The linter CI runs, pinned so that a clean machine checks exactly as a developer's does.
STATICCHECK_VERSION := 0.8.2
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck

.PHONY: build build-all test peers tools fuzz lint demo bench-dicom bench-forward bench-telemetry bench-linkemu bench-dispatch bench-stream bench-hub clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/lifeline ./cmd/lifeline

# The boxes are ARM, hubs mostly x86: both must build without cgo.
build-all:
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/lifeline-linux-amd64 ./cmd/lifeline
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/lifeline-linux-arm64 ./cmd/lifeline
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build ./...

# peers installs the real peers the tests need when they are missing and we are root;
# otherwise it says what is missing and the tests that need it skip (or fail under
# LIFELINE_REQUIRE_PEERS=1).
peers:
	@missing=""; for p in $(PEER_PROGRAMS); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	test -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so || missing="$$missing orthanc-dicomweb"; \
	test -e /usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so || missing="$$missing orthanc-postgresql"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -z "$$missing" ]; then echo "peers: all present"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "peers: installing $(PEER_PACKAGES) (missing:$$missing)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(PEER_PACKAGES) >/dev/null; \
	else echo "peers: missing$$missing; run as root to install them: apt-get install $(PEER_PACKAGES)"; fi

# test is what CI runs: the house kept tidy first (lint), then every test.
test: peers lint
	$(GO) test -race -timeout 30m ./...

# fuzz runs every fuzz target for FUZZTIME each, beyond the seed corpora that
# `make test` already runs.
fuzz:
	FUZZTIME=$(FUZZTIME) ./.ci/fuzz

# tools installs the pinned staticcheck unless it is there already.
tools:
	@$(STATICCHECK) -version 2>/dev/null | grep -qF '($(STATICCHECK_VERSION))' || \
		{ echo "tools: installing staticcheck v$(STATICCHECK_VERSION)"; $(GO) install honnef.co/go/tools/cmd/staticcheck@v$(STATICCHECK_VERSION); }

# lint fails when go.mod and go.sum are not tidy, a Go file is not gofmt-clean, or go vet
# or staticcheck finds anything.
lint: tools
	@$(GO) mod tidy -diff || { echo "lint: go.mod/go.sum are not tidy: run 'go mod tidy'"; exit 1; }
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
		if [ -n "$$unformatted" ]; then echo "lint: gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# demo runs hub, box and simulated devices on loopback and prints the URLs. It needs no
# test peer: its monitor and modality are simulated in the binary itself.
demo: build
	./bin/lifeline demo

# Benchmarks: each runs the real peer in the same run and prints the ratio, since these
# machines are shared and noisy. Numbers are recorded in README.md.
bench-dicom: peers
	$(GO) run ./dicom/bench -n 2000 -runs 3

# bench-forward needs root (network namespaces). BENCH_FORWARD_FLAGS picks sizes and
# profiles, e.g. "-mb 300 -profiles 5g-urban".
bench-forward: build peers
	$(GO) run ./dicom/transfer/bench -lifeline bin/lifeline $(BENCH_FORWARD_FLAGS)

bench-telemetry: peers
	$(GO) test -tags bench -run TestBench -v -count=1 ./telemetry/...

# bench-stream needs root (network namespaces for the emulated 5G link), ffmpeg and socat.
# f and g drive the ED view in headless Chromium (vitals to the pixel, 12-lead requests).
# BENCH_STREAM_FLAGS: -run a,b,e,d,c,f,g  -for 20s  -tunnel 30s  -outages handover,tunnel  -ecg 100  -v
bench-stream: build peers
	$(GO) run ./stream/bench -lifeline bin/lifeline -run a,b,e,c,d,f,g $(BENCH_STREAM_FLAGS)

# bench-dispatch: reports/s through encode → TCP → the dispatch simulator, and a 10-minute
# blind zone drained over linkemu's 4g-rural (needs root), with CPU and RSS.
bench-dispatch: peers
	$(GO) test -tags bench -run TestBench -v -count=1 ./dispatch

# bench-hub: enrolments and 64 KiB upload chunks per second over the hub's HTTP/3 port,
# on the embedded state, on PostgreSQL, and with two hubs on one PostgreSQL; the state
# engines alone; vitals messages per second through the hub's archive (3 runs, each
# beside vitals.Decode alone); and how many boxes, each sending CT studies (time
# compressed) and 12-lead vitals through the real box code, one hub holds before the p99
# of an upload append doubles (about 20 minutes; LIFELINE_BENCH_* in
# appliance/hub_boxes_bench_test.go shorten it). Numbers are in docs/multi-hub.md.
bench-hub: peers
	$(GO) test -run '^$$' -bench 'BenchmarkHub$$' -benchtime 3s -count 1 ./appliance
	$(GO) test -run '^$$' -bench 'BenchmarkRedeem$$' -benchtime 1s -count 1 ./internal/hubstate/pgstate
	$(GO) test -run '^$$' -bench 'BenchmarkHubVitals$$' -benchtime 32000x -count 3 ./appliance
	$(GO) test -tags bench -run 'TestBenchHubBoxes$$' -v -count 1 -timeout 2h ./appliance

bench-linkemu: peers
	$(GO) test -tags bench -run TestBenchLink -v -count=1 ./internal/linkemu

clean:
	rm -rf bin
