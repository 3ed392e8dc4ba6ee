// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Errors as a log line or a command's message: each error's message names the step that
//! failed and chains its cause as the source, so the line is the chain, each cause once.

use std::error::Error;

/// `error` and its chain of sources, joined by ": ".
pub fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[derive(Debug, thiserror::Error)]
    #[error("opening the door")]
    struct Door(#[source] io::Error);

    #[test]
    fn each_cause_once() {
        let e = Door(io::Error::new(io::ErrorKind::NotFound, "no key"));
        assert_eq!(chain(&e), "opening the door: no key");
        assert_eq!(chain(&io::Error::other("alone")), "alone");
    }
}
