//! iptables' and ip6tables' socket options as a hostile program would send
//! them, step by step (`Request::Table`: pieces of a value, carrying it out,
//! queries, reads of the answer), from two sockets at once, into one filter:
//! nothing panics, every refusal is an errno, and the filter still evaluates
//! frames afterwards.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netcell_stack::control::table::Staging;
use netcell_stack::filter::rules::Family;
use netcell_stack::filter::{Filter, parse};
use smoltcp::phy::Medium;

fuzz_target!(|data: &[u8]| {
    let mut f = Filter::default();
    f.sync_names(["lo", "eth0"].into_iter());
    f.replace(parse::parse_ruleset("chain c\ninput tcp dport 22 jump c\nc drop\n").unwrap());
    let mut st = Staging::default();
    // Each call: step, name, owner/family, offset, len, then up to 255 bytes.
    let mut d = data;
    while d.len() >= 8 {
        let (step, name, who, off, len, n) = (
            d[0] % 5,
            64 + i32::from(d[1] % 8),
            d[2],
            d[3],
            d[4],
            d[5] as usize,
        );
        let family = if who & 1 == 0 {
            Family::Ip
        } else {
            Family::Ip6
        };
        let owner = u64::from(who >> 1 & 1);
        let body = &d[6..(6 + n).min(d.len())];
        let len = u32::from(len) * 16 + u32::from(d[6 % d.len()]);
        let r = st.step(
            &mut f,
            (owner, family),
            who & 4 == 0,
            (step, name),
            u32::from(off) * 8,
            len,
            body,
            2000,
        );
        if let Err(e) = r {
            assert!(e > 0 && e < 200, "errno {e}");
        }
        d = &d[(6 + n).min(d.len())..];
    }
    let syn: [u8; 40] = [
        0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x9c, 0x40, 0x00,
        0x16, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x10, 0, 0, 0, 0, 0,
    ];
    let _ = f.input(1, Medium::Ip, &syn);
});
