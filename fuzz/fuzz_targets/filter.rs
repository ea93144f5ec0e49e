//! The packet filter: rule text from a container's owner (`--filter`, `netcell
//! filter load`) and frames through the rules. The input up to its first NUL
//! byte is a rule set; what follows is frames, split on 0xfe.
//!
//! Invariants: parsing never panics; a set that parses prints as text that
//! parses to the same rules (what `save` writes, `load` reads back); frames
//! never panic the filter, with or without connection tracking, and every
//! reject's answer is a well-formed IP packet.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netcell_stack::filter::{Filter, parse};
use smoltcp::phy::Medium;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let Ok(text) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let set = match parse::parse_ruleset(text) {
        Ok(s) => s,
        Err(e) => {
            assert!(e.line >= 1 && e.col >= 1, "{e}");
            return;
        }
    };
    let saved = set.to_string();
    let again = parse::parse_ruleset(&saved).unwrap_or_else(|e| panic!("{saved:?}: {e}"));
    assert_eq!(again.rules, set.rules, "{saved}");
    assert_eq!(again.policy, set.policy);
    let mut f = Filter::default();
    f.sync_names(["lo", "eth0"].into_iter());
    f.replace(set);
    let frames = data.get(split + 1..).unwrap_or(&[]);
    for (i, frame) in frames.split(|&b| b == 0xfe).enumerate() {
        let (medium, iface) = if i % 2 == 0 {
            (Medium::Ip, 0)
        } else {
            (Medium::Ethernet, 1)
        };
        let _ = f.input(iface, medium, frame);
        let _ = f.output(iface, medium, frame);
        f.send_answers(iface, |a| {
            let ip = if medium == Medium::Ethernet {
                &a[14..]
            } else {
                a
            };
            assert!(matches!(ip[0] >> 4, 4 | 6), "an answer is IP");
            true
        });
        while let Some(b) = f.take_arrival(iface) {
            f.recycle(b);
        }
    }
});
