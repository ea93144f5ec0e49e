//! `IPT_SO_SET_REPLACE` and `IP6T_SO_SET_REPLACE` blobs, as a container's
//! `iptables` or `ip6tables` would send them (each input is tried as both): the
//! decoder never panics, and a table it accepts is a rule set the filter takes
//! (written back as a table it reads the same, its text form parses back to the
//! same rules, it merges into a filter's set, and frames pass through it).

#![no_main]

use libfuzzer_sys::fuzz_target;
use netcell_stack::filter::rules::Family;
use netcell_stack::filter::{Filter, ipt, parse};
use smoltcp::phy::Medium;

fuzz_target!(|data: &[u8]| {
    for family in Family::ALL {
        one(data, family);
    }
});

fn one(data: &[u8], family: Family) {
    let Ok(set) = ipt::decode_replace_in(data, family) else {
        return;
    };
    // Written back as iptables reads it, and read again: the same set.
    let counts = vec![Default::default(); set.rules.len()];
    if let Ok(t) = ipt::encode_entries_in(&set, &counts, &Default::default(), family) {
        let again = ipt::decode_replace_in(&ipt::replace_blob(&t), family)
            .unwrap_or_else(|e| panic!("{set}: {e:?}"));
        // Chain by chain (a table may place its chains in any order).
        let by_chain = |s: &netcell_stack::filter::rules::RuleSet| {
            let mut names: Vec<String> = ["input", "forward", "output"]
                .iter()
                .map(|n| n.to_string())
                .collect();
            names.extend(s.chains.iter().cloned());
            let lists: Vec<Vec<String>> = names
                .iter()
                .map(|n| {
                    s.rules
                        .iter()
                        .filter(|(_, r)| r.chain.name() == n)
                        .map(|(_, r)| format!("{:?} {:?} {:?}", r.matches, r.log, r.verdict))
                        .collect()
                })
                .collect();
            (lists, s.policy, s.chains.clone())
        };
        assert_eq!(by_chain(&again), by_chain(&set));
    }
    let text = set.to_string();
    let again = parse::parse_ruleset(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(again.rules, set.rules, "{text}");
    let mut f = Filter::default();
    f.sync_names(["lo", "eth0"].into_iter());
    f.replace(parse::parse_ruleset("chain c\ninput tcp dport 22 jump c\nc drop\n").unwrap());
    let _ = f.replace_family(family, set);
    let syn: [u8; 40] = [
        0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x9c, 0x40, 0x1f,
        0x90, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x10, 0, 0, 0, 0, 0,
    ];
    let _ = f.input(1, Medium::Ip, &syn);
    let _ = f.output(1, Medium::Ip, &syn);
}
