// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Arbitrary bytes through the protocol crate's request and control decoders alone.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dmabuf_fuzz::proto_decode::run(data));
