# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# make demo   - the main job: daemon + a VM + a buffer shared both ways (installs what it needs)
# make test   - every test: Rust unit/integration tests, lints, guest module builds, VM suite
# make bench  - benchmarks against the physical floors

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all build test test-rust lint test-guest-build test-vm demo bench clean

all: build

build:
	$(CARGO) build --workspace --release

## Every test of the project. Each stage prints its own summary; any failure fails the target.
test: lint test-rust test-guest-build test-vm

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	$(CARGO) test --workspace

## The guest module against Debian's 6.1 and 6.12 headers, W=1, warnings are errors.
test-guest-build:
	$(MAKE) -C guest-driver check tools

## The VM suite: real QEMU, real Debian kernels, our module (tests/vm-suite.sh).
test-vm: build test-guest-build
	tests/vm-suite.sh

demo:
	qemu-scripts/demo.sh

bench:
	$(CARGO) bench -p vhost-device-dmabuf --bench dmabuf

clean:
	$(CARGO) clean
	$(MAKE) -C guest-driver clean
