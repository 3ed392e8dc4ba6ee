# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# make demo   - the main job: daemon + a VM + a buffer shared both ways (installs what it needs)
# make test   - every test: lints, Rust unit/integration tests, fuzz smoke (60 s per target), a
#               60 s soak, guest module builds, VM suite
# make bench  - benchmarks against the physical floors
# make fuzz   - coverage-guided fuzzing, FUZZ_SECONDS per target (default 600; fuzz/README.md)
# make soak   - the real daemon under two VMs and two host clients, SOAK_SECONDS (default 60)
# make deb    - the Debian packages, in target/debian/ (packaging/README.md)

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

FUZZ_SECONDS ?= 600
SOAK_SECONDS ?= 60

.PHONY: all build test test-rust test-nested lint test-guest-build test-vm test-deb deb demo bench clean fuzz fuzz-smoke soak

all: build

build:
	$(CARGO) build --workspace --release

## Every test of the project. Each stage prints its own summary; any failure fails the target.
test: lint test-rust test-nested fuzz-smoke soak test-guest-build test-deb test-vm

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@# The house rule (issue 11): no source file under crates/*/src over 700 lines.
	@big="$$(find crates -path '*/src/*' -name '*.rs' -exec awk 'END { if (NR > 700) print FILENAME " (" NR " lines)" }' {} \;)"; \
	if [ -n "$$big" ]; then echo "lint: over 700 lines: $$big" >&2; exit 1; fi

test-rust:
	$(CARGO) test --workspace

## The host dma-buf tests (udmabuf export, udmabuf and vgem shares, a fence that never signals)
## inside Debian 6.12, 7.2 and 7.3 guests, which have /dev/udmabuf and vgem (tests/nested.sh).
test-nested:
	tests/nested.sh

## The guest modules against Debian's 6.1, 6.12, 7.2 and 7.3 headers, W=1, warnings are errors.
test-guest-build:
	$(MAKE) -C guest-driver check tools

## The Debian packages installed, used and purged: the daemon's in a fresh bookworm root booted
## with systemd, the DKMS one in the sid root with the 7.2 headers (tests/packages.sh).
test-deb:
	tests/packages.sh

## vhost-device-dmabuf_<v>-1_amd64.deb (cargo-deb) and virtio-dmabuf-dkms_<v>-1_all.deb in
## target/debian/ (packaging/build-deb.sh).
deb:
	packaging/build-deb.sh

## The VM suite: real QEMU, real Debian kernels, our module (tests/vm-suite.sh).
test-vm: build test-guest-build
	tests/vm-suite.sh

demo:
	@qemu-scripts/demo.sh

## Coverage-guided fuzzing (cargo fuzz; `cargo install` fetches it if missing): each target for
## FUZZ_SECONDS, from the seed corpus plus fuzz/work/; a crash fails and leaves its input in
## fuzz/artifacts/<target>/.
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh

## The same, 60 s per target (part of `make test`).
fuzz-smoke:
	FUZZ_SECONDS=60 fuzz/run.sh

## Soak: the release daemon, two harness VMs and two host clients doing random shared work with
## every byte checked, for SOAK_SECONDS; fails on a data mismatch, a hang or an fd leak.
soak:
	$(CARGO) build --release -p vhost-device-dmabuf --bin vhost-device-dmabuf --example soak
	target/release/examples/soak --seconds $(SOAK_SECONDS) --daemon target/release/vhost-device-dmabuf

bench:
	$(CARGO) bench -p vhost-device-dmabuf --bench dmabuf

clean:
	$(CARGO) clean
	$(MAKE) -C guest-driver clean
