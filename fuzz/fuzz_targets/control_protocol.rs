// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Arbitrary byte streams on the daemon's host control socket.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dmabuf_fuzz::control_protocol::run(data));
