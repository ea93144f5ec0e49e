use super::*;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};

fn tcp(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    control: TcpControl,
    ack: bool,
) -> Vec<u8> {
    let (s, d) = (Ipv4Address::from(src), Ipv4Address::from(dst));
    let t = TcpRepr {
        src_port: sport,
        dst_port: dport,
        control,
        seq_number: TcpSeqNumber(1000),
        ack_number: ack.then_some(TcpSeqNumber(5000)),
        window_len: 1000,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let ip = Ipv4Repr {
        src_addr: s,
        dst_addr: d,
        next_header: IpProtocol::Tcp,
        payload_len: t.buffer_len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 20 + t.buffer_len()];
    let caps = ChecksumCapabilities::default();
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), &caps);
    t.emit(
        &mut TcpPacket::new_unchecked(&mut buf[20..]),
        &s.into(),
        &d.into(),
        &caps,
    );
    buf
}

fn filter(text: &str) -> Filter {
    let mut f = Filter::default();
    f.sync_names(["lo", "eth0"].into_iter());
    f.replace(parse::parse_ruleset(text).unwrap());
    f
}

const PEER: [u8; 4] = [10, 88, 0, 1];
const ME: [u8; 4] = [10, 88, 0, 2];

#[test]
fn rules_match_ports_interfaces_and_count() {
    let mut f = filter("input iif eth0 tcp dport 8080 drop\ninput tcp dport 8000-8100 accept\n");
    let syn = tcp(PEER, 40000, ME, 8080, TcpControl::Syn, false);
    assert!(!f.input(1, Medium::Ip, &syn), "dropped on eth0");
    assert!(
        f.input(0, Medium::Ip, &syn),
        "lo is not eth0: the second rule"
    );
    let other = tcp(PEER, 40000, ME, 8081, TcpControl::Syn, false);
    assert!(f.input(1, Medium::Ip, &other));
    let l = f.list();
    assert_eq!((l[0].count.packets, l[1].count.packets), (1, 2));
    assert_eq!(l[0].count.bytes, syn.len() as u64);
    assert_eq!(f.stats().dropped, 1);
    // Output is not watched: nothing there to refuse.
    assert!(!f.watches_output());
}

#[test]
fn conntrack_lets_answers_in_and_keeps_new_ones_out() {
    let mut f = filter("policy input drop\ninput ct state established,related accept\n");
    assert!(f.watches_output(), "tracking needs to see what leaves");
    // Incoming connection attempts: dropped.
    let syn_in = tcp(PEER, 40000, ME, 22, TcpControl::Syn, false);
    assert!(!f.input(1, Medium::Ip, &syn_in));
    // Our own connection: its SYN-ACK comes back established.
    let syn_out = tcp(ME, 50000, PEER, 80, TcpControl::Syn, false);
    assert!(f.output(1, Medium::Ip, &syn_out));
    let synack = tcp(PEER, 80, ME, 50000, TcpControl::Syn, true);
    assert!(f.input(1, Medium::Ip, &synack));
    // A RST for nothing tracked is invalid: dropped.
    let rst = tcp(PEER, 81, ME, 50001, TcpControl::Rst, false);
    assert!(!f.input(1, Medium::Ip, &rst));
    assert_eq!(f.stats().connections, 1);
}

#[test]
fn a_rejected_syn_is_answered_with_a_reset_on_its_interface() {
    let mut f = filter("input tcp dport 8080 reject with tcp reset\n");
    let syn = tcp(PEER, 40000, ME, 8080, TcpControl::Syn, false);
    assert!(!f.input(1, Medium::Ip, &syn));
    let mut sent = Vec::new();
    f.send_answers(1, |b| {
        sent.push(b.to_vec());
        true
    });
    assert_eq!(sent.len(), 1);
    let ip = Ipv4Packet::new_checked(&sent[0][..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.src_addr(), Ipv4Address::from(ME));
    assert_eq!(ip.dst_addr(), Ipv4Address::from(PEER));
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(t.rst() && t.ack());
    assert_eq!((t.src_port(), t.dst_port()), (8080, 40000));
    assert_eq!(t.ack_number(), TcpSeqNumber(1001), "acknowledges the SYN");
    assert!(t.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
    // An output reject is handed back as an arrival; ICMP by default.
    let mut f = filter("output tcp dport 25 reject\n");
    let syn = tcp(ME, 50000, PEER, 25, TcpControl::Syn, false);
    assert!(!f.output(1, Medium::Ip, &syn));
    let a = f.take_arrival(1).expect("an answer to receive");
    let ip = Ipv4Packet::new_checked(&a[..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.next_header(), IpProtocol::Icmp);
    assert_eq!(&ip.payload()[..2], &[3, 3], "port unreachable");
    assert_eq!(
        &ip.payload()[8..8 + 20],
        &syn[..20],
        "quotes the SYN's header"
    );
}

#[test]
fn starts_are_checked_without_being_counted_twice() {
    let mut f = filter("output tcp dport 25 drop\noutput udp dport 53 reject\n");
    let me = IpAddress::from(Ipv4Address::from(ME));
    let peer = IpAddress::from(Ipv4Address::from(PEER));
    assert_eq!(
        f.check_start(1, Proto::Tcp, me, 1, peer, 25, false),
        Err(libc::EPERM)
    );
    assert_eq!(
        f.check_start(1, Proto::Udp, me, 1, peer, 53, false),
        Err(libc::ECONNREFUSED)
    );
    // A refused start never becomes a packet: it counts, once.
    assert_eq!(f.list()[0].count.packets, 1);
    assert_eq!(f.list()[1].count.packets, 1);
    // An accepted one does not: its packet is counted when it leaves.
    assert_eq!(f.check_start(1, Proto::Tcp, me, 1, peer, 80, false), Ok(()));
    assert_eq!(f.list()[0].count.packets, 1);
    assert_eq!(
        f.check_start(1, Proto::Tcp, me, 1, peer, 25, true),
        Err(libc::EPERM)
    );
    assert_eq!(f.list()[0].count.packets, 2, "a packetless start counts");
}

#[test]
fn garbage_frames_do_not_panic() {
    let mut f = filter(
        "policy input drop\ninput ct state established accept\ninput reject\noutput reject with icmp type host-unreachable\n",
    );
    let mut x: u32 = 99;
    for len in 0..300 {
        let mut frame: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        if let Some(b) = frame.first_mut() {
            *b = if len % 2 == 0 { 0x45 } else { 0x60 };
        }
        let _ = f.input(1, Medium::Ip, &frame);
        let _ = f.output(1, Medium::Ip, &frame);
        let _ = f.input(1, Medium::Ethernet, &frame);
        f.send_answers(1, |_| true);
        while let Some(b) = f.take_arrival(1) {
            f.recycle(b);
        }
    }
}

#[test]
fn user_chains_jump_and_return() {
    let text = "chain web\n\
                input tcp dport 80 jump web\n\
                web ip saddr 192.168.0.0/16 return\n\
                web drop\n";
    let mut f = filter(text);
    let to80 = tcp(PEER, 40000, ME, 80, TcpControl::Syn, false);
    assert!(!f.input(1, Medium::Ip, &to80), "dropped in the user chain");
    let from_lan = tcp([192, 168, 1, 5], 40000, ME, 80, TcpControl::Syn, false);
    assert!(
        f.input(1, Medium::Ip, &from_lan),
        "returned, then the policy"
    );
    let to81 = tcp(PEER, 40000, ME, 81, TcpControl::Syn, false);
    assert!(f.input(1, Medium::Ip, &to81), "no jump");
    let l = f.list();
    assert_eq!(l[0].count.packets, 2, "the jump rule counted both");
    // What `save` prints reads back.
    let saved = f.ruleset().to_string();
    assert!(
        saved.contains("chain web\n") && saved.contains("input tcp dport 80 jump web\n"),
        "{saved}"
    );
    assert_eq!(
        parse::parse_ruleset(&saved).unwrap().rules,
        f.ruleset().rules
    );
    // Loops and jumps to nothing are refused, with the rule's line.
    let e = parse::parse_ruleset("chain a\nchain b\na jump b\nb jump a\n").unwrap_err();
    assert!(
        e.msg.contains("loop") && (e.line == 3 || e.line == 4),
        "{e}"
    );
    let e = parse::parse_ruleset("input jump nowhere\n").unwrap_err();
    assert!(e.msg.contains("no chain named 'nowhere'"), "{e}");
    let e = parse::parse_ruleset("chain input\n").unwrap_err();
    assert!(e.msg.contains("not a chain name"), "{e}");
    // Live: a jump that would loop is refused and leaves the set as it was.
    let mut f = filter("chain a\nchain b\na jump b\n");
    let parse::Addition::Rule(r) =
        parse::parse_rule("b jump a", &f.ruleset().chains.clone()).unwrap()
    else {
        panic!("a rule");
    };
    assert!(matches!(f.add(r, None), Err(ChangeError::BadJump(_))));
    assert_eq!(f.list().len(), 1);
}

#[test]
fn a_flood_of_flows_stops_at_the_table_limit_and_established_ones_go_on() {
    let mut f = filter("policy input drop\ninput ct state established accept\n");
    // One connection of ours, answered: established.
    let syn_out = tcp(ME, 50000, PEER, 80, TcpControl::Syn, false);
    assert!(f.output(1, Medium::Ip, &syn_out));
    let synack = tcp(PEER, 80, ME, 50000, TcpControl::Syn, true);
    assert!(f.input(1, Medium::Ip, &synack));
    // A flood of new flows from the container fills the table, and stops there.
    for i in 0..(conntrack::MAX_ENTRIES + 5000) {
        let port = 1024 + (i % 60000) as u16;
        let host = [10, 88, (i / 60000) as u8 + 1, 9];
        let _ = f.output(
            1,
            Medium::Ip,
            &tcp(ME, port, host, 9, TcpControl::Syn, false),
        );
    }
    assert!(
        f.stats().connections <= conntrack::MAX_ENTRIES,
        "{:?}",
        f.stats()
    );
    // The established connection still passes.
    let ack = tcp(PEER, 80, ME, 50000, TcpControl::None, true);
    assert!(f.input(1, Medium::Ip, &ack));
}

#[test]
fn a_family_s_table_replaces_that_family_s_rules_only() {
    use super::rules::Family;
    let mut f = filter(
        "chain six\n\
         input tcp dport 22 accept\n\
         input ip6 saddr fd00::/8 jump six\n\
         six meta l4proto udp drop\n\
         input ip saddr 10.0.0.0/8 drop\n",
    );
    // The IPv6 rule has counted something.
    f.add_counts(
        super::ipt::Slot::Rule(1),
        Count {
            packets: 3,
            bytes: 300,
        },
    );
    let v4 = super::parse::parse_ruleset(
        "policy input drop\ninput meta nfproto ipv4 tcp dport 80 accept\n",
    )
    .unwrap();
    f.replace_family(Family::Ip, v4).unwrap();
    let set = f.ruleset();
    assert_eq!(
        set.to_string(),
        "policy ip input drop\npolicy ip6 input accept\npolicy forward accept\n\
         policy output accept\nchain six\n\
         input meta nfproto ipv6 tcp dport 22 accept\n\
         input ip6 saddr fd00::/8 jump six\n\
         six meta nfproto ipv6 meta l4proto udp drop\n\
         input meta nfproto ipv4 tcp dport 80 accept\n",
        "the rule of both families keeps its IPv6 half; IPv4's rules are the table's"
    );
    let counts: Vec<u64> = f.list().iter().map(|l| l.count.packets).collect();
    assert_eq!(counts, [0, 3, 0, 0], "the IPv6 rules keep their counters");
    // A replace that would loop is refused and changes nothing.
    let mut looping = super::rules::RuleSet::default();
    looping.chains.push("six".into());
    looping
        .add(
            super::rules::Rule {
                chain: super::rules::Chain::User("six".into()),
                matches: vec![super::rules::Match::Family(Family::Ip)],
                log: None,
                verdict: super::rules::Verdict::Jump("six".into()),
            },
            None,
        )
        .unwrap();
    let before = f.ruleset().clone();
    assert!(f.replace_family(Family::Ip, looping).is_err());
    assert_eq!(f.ruleset(), &before);
}

#[test]
fn a_set_whose_jumps_multiply_costs_a_bounded_walk() {
    // 15 chains, each jumping 10 times to the next: 10^14 paths. Loading it is
    // linear; a packet's walk stops at the budget and the packet is dropped.
    let mut text = String::new();
    for c in 0..15 {
        text.push_str(&format!("chain c{c}\n"));
    }
    text.push_str("input jump c0\n");
    for c in 0..14 {
        for _ in 0..10 {
            text.push_str(&format!("c{c} jump c{}\n", c + 1));
        }
    }
    let t0 = std::time::Instant::now();
    let mut f = filter(&text);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        t0.elapsed()
    );
    let syn = tcp(PEER, 40000, ME, 80, TcpControl::Syn, false);
    let t0 = std::time::Instant::now();
    assert!(!f.input(1, Medium::Ip, &syn), "dropped past the budget");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(f.stats().over_budget, 1);
    // A loop through many chains is still found.
    let mut looped = String::new();
    for c in 0..20 {
        looped.push_str(&format!("chain l{c}\n"));
    }
    for c in 0..20 {
        looped.push_str(&format!("l{c} jump l{}\n", (c + 1) % 20));
    }
    let e = super::parse::parse_ruleset(&looped).unwrap_err();
    assert!(e.msg.contains("loop"), "{e}");
}
