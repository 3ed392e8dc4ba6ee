// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The fuzz targets' seed corpus and every input a fuzz run found a bug with
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`), replayed through the fuzz drivers —
//! the same code and the same checks as `cargo fuzz run`, without libFuzzer.

use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "../../../fuzz/src/control_protocol.rs"]
mod control_protocol;
#[allow(dead_code)]
#[path = "../../../fuzz/src/proto_decode.rs"]
mod proto_decode;
#[allow(dead_code)]
#[path = "../../../fuzz/src/request_decode.rs"]
mod request_decode;
#[allow(dead_code)]
#[path = "../../../fuzz/src/sg_resolver.rs"]
mod sg_resolver;

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        files.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    files.sort();
    assert!(!files.is_empty(), "no inputs for {target}");
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    for path in inputs(target) {
        let data = std::fs::read(&path).unwrap();
        eprintln!("{}", path.display());
        run(&data);
    }
}

#[test]
fn request_decode_inputs() {
    replay("request_decode", request_decode::run);
}

#[test]
fn sg_resolver_inputs() {
    replay("sg_resolver", sg_resolver::run);
}

#[test]
fn proto_decode_inputs() {
    replay("proto_decode", proto_decode::run);
}

#[test]
fn control_protocol_inputs() {
    replay("control_protocol", control_protocol::run);
}
