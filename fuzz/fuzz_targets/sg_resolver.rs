// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Segment lists and ranges through the memory resolver, against a reference model.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dmabuf_fuzz::sg_resolver::run(data));
