# `make test` is the one test command (README, .ci/run): install the peers the
# black-box tests talk to if they are missing, then formatting, vet, the
# race-enabled shuffled test suite, and a short run of every fuzz target.

GO        ?= go
FUZZTIME  ?= 5s
TESTFLAGS ?=
N         ?= 20000

.PHONY: test deps fmt vet unit fuzz build bench clean

test: deps fmt vet unit fuzz

deps:
	@bash .ci/deps

# gofmt -l prints nothing when all is formatted; any name is a failure.
fmt:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The race-enabled shuffled suite; a test that fails is run once more alone
# and reported as FLAKY if it then passes (see .ci/unit).
unit:
	@GO="$(GO)" TESTFLAGS="$(TESTFLAGS)" bash .ci/unit

# Every fuzz target, FUZZTIME each (see .ci/fuzz for how they are found).
fuzz:
	@GO="$(GO)" FUZZTIME="$(FUZZTIME)" bash .ci/fuzz

build:
	$(GO) build -o kadenz ./cmd/kadenz

bench:
	bash bench/relay.sh $(N)

clean:
	rm -f kadenz
	rm -rf bench/out
