// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Fuzz drivers of the dma-buf daemon: each takes arbitrary bytes and runs them through the
//! daemon's real code, checking what the specs promise. The `fuzz_targets/` binaries hand them
//! libFuzzer's inputs; `crates/vhost-device-dmabuf/tests/fuzz_corpus.rs` replays the seed corpus
//! and every regression input through the same drivers in the normal test suite.

pub mod control_protocol;
pub mod proto_decode;
pub mod request_decode;
pub mod sg_resolver;
