//! Netlink requests from a container program (`NETLINK_ROUTE`): any bytes, served
//! on a container's interfaces. Nothing may panic, every reply must be well formed
//! (lengths inside the datagram), and the interfaces must still answer a link
//! dump afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netcell_stack::netlink::{sample_interfaces, serve_route};

/// A link dump request (RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq 1).
const DUMP: [u8; 32] = [
    32, 0, 0, 0, 18, 0, 1, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0,
];

fn well_formed(d: &[u8]) {
    let mut at = 0;
    while at < d.len() {
        assert!(d.len() - at >= 16, "a truncated header");
        let len = u32::from_ne_bytes(d[at..at + 4].try_into().unwrap()) as usize;
        assert!(
            len >= 16 && at + len <= d.len(),
            "a message past its datagram"
        );
        at += (len + 3) & !3;
    }
}

fuzz_target!(|data: &[u8]| {
    let mut ifs = sample_interfaces();
    for reply in serve_route(&mut ifs, data, 4242) {
        well_formed(&reply);
    }
    ifs.check().expect("the interfaces' invariants hold");
    for d in [
        "10.88.0.9",
        "10.77.0.9",
        "192.0.2.1",
        "fd00::9",
        "2001:db8::1",
        "fe80::1",
    ] {
        let _ = ifs.route(&d.parse().unwrap());
    }
    let after = serve_route(&mut ifs, &DUMP, 4242);
    let last = after.last().expect("the dump answers");
    well_formed(last);
    // Ends with NLMSG_DONE.
    let mut at = 0;
    let mut ty = 0;
    while at + 16 <= last.len() {
        let len = u32::from_ne_bytes(last[at..at + 4].try_into().unwrap()) as usize;
        ty = u16::from_ne_bytes([last[at + 4], last[at + 5]]);
        at += (len + 3) & !3;
    }
    assert_eq!(ty, 3, "the dump ends with NLMSG_DONE");
});
