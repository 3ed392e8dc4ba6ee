// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Arbitrary bytes as virtqueue requests through the daemon's vhost-user backend.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dmabuf_fuzz::request_decode::run(data));
