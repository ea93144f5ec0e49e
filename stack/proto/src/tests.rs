//! Round trips and malformed input for every message and record.

use super::*;

#[test]
fn origins_and_markers_round_trip() {
    let mut out = [0u8; 32];
    let n = origin::encode_addr(&[2, 0, 1, 2], &mut out).unwrap();
    out[n] = 9;
    assert_eq!(
        origin::decode(&out[..n + 1]),
        Some((&[2u8, 0, 1, 2][..], &[9u8][..]))
    );
    assert_eq!(origin::decode(&[5, 1]), None);
    assert_eq!(origin::decode(&[]), None);
    assert_eq!(marker::decode(&marker::encode(113)), 113);
    assert_eq!(marker::decode(&[1, 2]), 111);
    assert_eq!(marker::decode(&(-5i32).to_ne_bytes()), 111);
}

fn roundtrip(req: Request<'_>) {
    let mut buf = [0u8; MAX_MESSAGE];
    let hdr = RequestHeader { seq: 7, sock: 99 };
    let n = encode_request(hdr, &req, &mut buf).unwrap();
    let (h2, r2) = decode_request(&buf[..n]).unwrap();
    assert_eq!(h2, hdr);
    assert_eq!(r2, req);
}

#[test]
fn requests_roundtrip() {
    roundtrip(Request::Hello { pid: 1234 });
    roundtrip(Request::Socket {
        domain: 2,
        ty: 1 | 0o4000,
        protocol: 0,
    });
    roundtrip(Request::Bind {
        addr: &[2, 0, 0, 80],
    });
    for (wait, spare) in [(false, false), (true, false), (false, true), (true, true)] {
        roundtrip(Request::Connect {
            addr: &[10, 0],
            wait,
            spare,
        });
    }
    roundtrip(Request::Listen { backlog: -1 });
    roundtrip(Request::GetSockName);
    roundtrip(Request::GetPeerName);
    roundtrip(Request::Interfaces { from: 7 });
    roundtrip(Request::Placed { fd: 42 });
    roundtrip(Request::SetSockOpt {
        level: 6,
        name: 1,
        value: &1i32.to_ne_bytes(),
    });
    roundtrip(Request::GetSockOpt {
        level: 1,
        name: 4,
        len: 4,
    });
    roundtrip(Request::Shutdown { how: 1 });
    roundtrip(Request::SendTo {
        flags: 0x40,
        addr: &[2, 0, 0, 53, 10, 0, 0, 1],
        control: &[1, 2, 3],
        payload: b"query",
    });
    roundtrip(Request::SendTo {
        flags: 0,
        addr: &[],
        control: &[],
        payload: &[],
    });
    roundtrip(Request::Post {
        flags: 0x40,
        addr: &[2, 0, 0, 53, 10, 0, 0, 1],
        payload: b"answer",
    });
    roundtrip(Request::OriginRing);
    roundtrip(Request::Closing);
    roundtrip(Request::Origin {
        len: 1400,
        peek: true,
        prefix: b"0123456789abcdef",
    });
}

#[test]
fn big_datagrams_fit_small_replies_do_not_grow() {
    let payload = vec![7u8; MAX_DATAGRAM];
    let mut buf = vec![0u8; MAX_REQUEST];
    let n = encode_request(
        RequestHeader::default(),
        &Request::SendTo {
            flags: 0,
            addr: &[0; MAX_SOCKADDR],
            control: &[0; MAX_CONTROL],
            payload: &payload,
        },
        &mut buf,
    )
    .unwrap();
    assert!(decode_request(&buf[..n]).is_ok());
    let big = vec![0u8; MAX_MESSAGE + 1];
    assert!(matches!(decode_reply(&big), Err(DecodeError::TooLong(_))));
}

#[test]
fn reply_roundtrip() {
    let mut buf = [0u8; MAX_MESSAGE];
    let r = Reply {
        op: Op::GetSockName,
        seq: 3,
        errno: 0,
        value: 16,
        flags: reply_flags::APPLY_NATIVE,
        data: &[2, 0, 1, 2, 127, 0, 0, 1],
    };
    let n = encode_reply(&r, &mut buf).unwrap();
    assert_eq!(decode_reply(&buf[..n]).unwrap(), r);
}

#[test]
fn every_truncation_is_an_error() {
    let mut buf = [0u8; MAX_MESSAGE];
    let n = encode_request(
        RequestHeader::default(),
        &Request::Socket {
            domain: 2,
            ty: 1,
            protocol: 0,
        },
        &mut buf,
    )
    .unwrap();
    for cut in 0..n {
        assert!(decode_request(&buf[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn garbage_is_rejected_not_panicking() {
    // A cheap deterministic PRNG; the fuzz targets do the thorough job.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut buf = [0u8; 64];
    for _ in 0..20000 {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let len = (x % 64) as usize;
        let _ = decode_request(&buf[..len]);
        let _ = decode_reply(&buf[..len]);
        let _ = AcceptRecord::decode(&buf[..len]);
    }
}

#[test]
fn wrong_magic_version_op_length() {
    let mut buf = [0u8; MAX_MESSAGE];
    let n = encode_request(RequestHeader::default(), &Request::GetSockName, &mut buf).unwrap();
    let mut m = buf[..n].to_vec();
    m[0] = b'x';
    assert!(matches!(decode_request(&m), Err(DecodeError::BadMagic(_))));
    let mut m = buf[..n].to_vec();
    m[2] = 9;
    assert_eq!(decode_request(&m), Err(DecodeError::BadVersion(9)));
    let mut m = buf[..n].to_vec();
    m[3] = 200;
    assert_eq!(decode_request(&m), Err(DecodeError::UnknownOp(200)));
    let mut m = buf[..n].to_vec();
    m.push(0);
    assert!(matches!(
        decode_request(&m),
        Err(DecodeError::BadField { .. })
    ));
    let big = vec![0u8; MAX_REQUEST + 1];
    assert_eq!(
        decode_request(&big),
        Err(DecodeError::TooLong(MAX_REQUEST + 1))
    );
    let long = [0u8; MAX_SOCKADDR + 1];
    assert!(
        encode_request(
            RequestHeader::default(),
            &Request::Bind { addr: &long },
            &mut buf
        )
        .is_err()
    );
}

#[test]
fn accept_record_roundtrip() {
    let mut a = [0u8; RECORD_SOCKADDR];
    a[0] = 2;
    let rec = AcceptRecord {
        local: (a, 16),
        peer: ([7u8; RECORD_SOCKADDR], 28),
    };
    let enc = rec.encode();
    assert_eq!(AcceptRecord::decode(&enc), Some(rec));
    let mut bad = enc;
    bad[4] = 200;
    assert_eq!(AcceptRecord::decode(&bad), None);
}

#[test]
fn interface_records_round_trip_and_stop_at_the_room() {
    use iface::*;
    let mut name = [0u8; 16];
    name[..4].copy_from_slice(b"eth0");
    let eth = Iface {
        index: 2,
        flags: 0x1043,
        mtu: 1500,
        hwtype: 1,
        mac: [2, 0, 0, 0, 0, 1],
        name,
    };
    let list = [IfAddr::V4([10, 0, 0, 2], 24), IfAddr::V6([0xfd; 16], 64)];
    let mut out = [0u8; HEADER + 2 * ADDR + HEADER];
    let mut pos = 0;
    assert!(encode(&eth, &list, false, &mut out, &mut pos));
    assert_eq!(pos, HEADER + 2 * ADDR);
    // A second one does not fit whole: nothing written; partially it does.
    assert!(!encode(&eth, &list, false, &mut out, &mut pos));
    assert_eq!(pos, HEADER + 2 * ADDR);
    assert!(encode(&eth, &list, true, &mut out, &mut pos));
    assert_eq!(pos, out.len());
    let (first, a, rest) = decode(&out).unwrap();
    assert_eq!(first, eth);
    assert_eq!(first.name(), "eth0");
    assert_eq!(addrs(a).collect::<Vec<_>>(), list.to_vec());
    let (second, a, rest) = decode(rest).unwrap();
    assert_eq!(second.index, 2);
    assert_eq!(addrs(a).count(), 0);
    assert!(rest.is_empty() && decode(rest).is_none());
    // A count that claims more than the data holds.
    let mut bad = out;
    bad[36] = 200;
    assert!(decode(&bad).is_none());
}

/// A grant reads back as written, covers exactly its block, and a malformed
/// one (family, prefix longer than the family's) is refused.
#[test]
fn grants_cover_their_block() {
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&[10, 88, 0, 0]);
    let g = Grant {
        family: 4,
        prefix_len: 23,
        addr,
        generation: 7,
        max_payload: 1452,
    };
    let mut b = [0u8; Grant::LEN];
    g.encode(&mut b);
    assert_eq!(Grant::decode(&b), Some(g));
    assert!(g.covers(&[10, 88, 0, 1]));
    assert!(g.covers(&[10, 88, 1, 255]));
    assert!(!g.covers(&[10, 88, 2, 0]));
    assert!(!g.covers(&[10, 89, 0, 1]));
    assert!(!g.covers(&[10, 88, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    let whole = Grant {
        prefix_len: 32,
        ..g
    };
    assert!(!whole.covers(&[10, 88, 0, 1]));
    assert!(whole.covers(&[10, 88, 0, 0]));
    b[1] = 33;
    assert_eq!(Grant::decode(&b), None);
    b[0] = 5;
    b[1] = 8;
    assert_eq!(Grant::decode(&b), None);
    assert_eq!(Grant::decode(&b[..27]), None);
}
