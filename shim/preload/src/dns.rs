//! DNS messages (RFC 1035): building queries and reading the answers the resolver
//! needs (A, AAAA, CNAME, PTR). Every length and pointer is bounds-checked; a
//! malformed answer is an error, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// Response codes the resolver distinguishes.
pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_NXDOMAIN: u8 = 3;

/// Why a message could not be built or read.
#[derive(Debug, PartialEq, Eq)]
pub enum DnsError {
    /// A name that is not a valid domain name.
    BadName,
    /// A malformed message.
    Malformed,
}

/// Builds a recursive query for `name` (without the trailing dot) and `qtype`.
pub fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    query_class(id, name, CLASS_IN, qtype)
}

/// Builds a recursive query of any class (`res_query`'s `class` argument).
pub fn query_class(id: u16, name: &str, qclass: u16, qtype: u16) -> Result<Vec<u8>, DnsError> {
    let mut m = Vec::with_capacity(32 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    encode_name(name, &mut m)?;
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&qclass.to_be_bytes());
    Ok(m)
}

fn encode_name(name: &str, m: &mut Vec<u8>) -> Result<(), DnsError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > 253 {
        return Err(DnsError::BadName);
    }
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(DnsError::BadName);
            }
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
    }
    m.push(0);
    Ok(())
}

/// Reads a possibly compressed name at `pos`; returns it and the position after it.
fn read_name(msg: &[u8], mut pos: usize) -> Result<(String, usize), DnsError> {
    let mut out = String::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(pos).ok_or(DnsError::Malformed)? as usize;
        match len {
            0 => {
                return Ok((out, end.unwrap_or(pos + 1)));
            }
            l if l & 0xc0 == 0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(DnsError::Malformed)? as usize;
                if end.is_none() {
                    end = Some(pos + 2);
                }
                pos = ((l & 0x3f) << 8) | lo;
            }
            l if l <= 63 => {
                let label = msg.get(pos + 1..pos + 1 + l).ok_or(DnsError::Malformed)?;
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&String::from_utf8_lossy(label));
                if out.len() > 255 {
                    return Err(DnsError::Malformed);
                }
                pos += 1 + l;
            }
            _ => return Err(DnsError::Malformed),
        }
    }
    Err(DnsError::Malformed) // a pointer loop
}

/// One resource record of the answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An address.
    Addr(String, IpAddr),
    /// `owner` is an alias of `target`.
    Cname(String, String),
    /// A reverse mapping.
    Ptr(String, String),
}

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    pub rcode: u8,
    pub truncated: bool,
    pub answers: Vec<Record>,
}

fn u16_at(m: &[u8], p: usize) -> Result<u16, DnsError> {
    Ok(u16::from_be_bytes([
        *m.get(p).ok_or(DnsError::Malformed)?,
        *m.get(p + 1).ok_or(DnsError::Malformed)?,
    ]))
}

/// Parses a response to query `id`; records of other types are skipped.
pub fn parse(msg: &[u8], id: u16) -> Result<Response, DnsError> {
    if msg.len() < 12 || u16_at(msg, 0)? != id {
        return Err(DnsError::Malformed);
    }
    let flags = u16_at(msg, 2)?;
    if flags & 0x8000 == 0 {
        return Err(DnsError::Malformed); // not a response
    }
    let qd = u16_at(msg, 4)? as usize;
    let an = u16_at(msg, 6)? as usize;
    let mut pos = 12;
    for _ in 0..qd {
        let (_, p) = read_name(msg, pos)?;
        pos = p + 4;
    }
    let mut answers = Vec::new();
    for _ in 0..an {
        let (owner, p) = read_name(msg, pos)?;
        let ty = u16_at(msg, p)?;
        let class = u16_at(msg, p + 2)?;
        let rdlen = u16_at(msg, p + 8)? as usize;
        let rd = p + 10;
        let data = msg.get(rd..rd + rdlen).ok_or(DnsError::Malformed)?;
        if class == CLASS_IN {
            match (ty, rdlen) {
                (TYPE_A, 4) => answers.push(Record::Addr(
                    owner,
                    IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
                )),
                (TYPE_AAAA, 16) => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(data);
                    answers.push(Record::Addr(owner, IpAddr::V6(Ipv6Addr::from(a))));
                }
                (TYPE_CNAME, _) => answers.push(Record::Cname(owner, read_name(msg, rd)?.0)),
                (TYPE_PTR, _) => answers.push(Record::Ptr(owner, read_name(msg, rd)?.0)),
                _ => {}
            }
        }
        pos = rd + rdlen;
    }
    Ok(Response {
        rcode: (flags & 0x000f) as u8,
        truncated: flags & 0x0200 != 0,
        answers,
    })
}

/// Follows the CNAME chain from `name` and collects its addresses of the wanted
/// family; returns the canonical name too.
pub fn addresses(r: &Response, name: &str, want_v6: bool) -> (String, Vec<IpAddr>) {
    let mut canon = name.trim_end_matches('.').to_string();
    for _ in 0..16 {
        let next = r.answers.iter().find_map(|a| match a {
            Record::Cname(o, t) if o.eq_ignore_ascii_case(&canon) => Some(t.clone()),
            _ => None,
        });
        match next {
            Some(t) => canon = t,
            None => break,
        }
    }
    let addrs = r
        .answers
        .iter()
        .filter_map(|a| match a {
            Record::Addr(o, ip) if o.eq_ignore_ascii_case(&canon) && ip.is_ipv6() == want_v6 => {
                Some(*ip)
            }
            _ => None,
        })
        .collect();
    (canon, addrs)
}

/// The reverse-lookup name of an address (`4.3.2.1.in-addr.arpa`, nibbles for v6).
pub fn reverse_name(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => {
            let mut s = String::with_capacity(72);
            for b in a.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(q: &[u8], records: &[(&str, u16, &[u8])]) -> Vec<u8> {
        let mut m = q.to_vec();
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = records.len() as u8;
        for (name, ty, data) in records {
            encode_name(name, &mut m).unwrap();
            m.extend_from_slice(&ty.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    #[test]
    fn query_answer_cname_chain() {
        let q = query(0x1234, "www.example.test", TYPE_A).unwrap();
        let mut cname = Vec::new();
        encode_name("web.example.test", &mut cname).unwrap();
        let r = answer(
            &q,
            &[
                ("www.example.test", TYPE_CNAME, &cname),
                ("web.example.test", TYPE_A, &[10, 0, 0, 7]),
            ],
        );
        let resp = parse(&r, 0x1234).unwrap();
        assert_eq!(resp.rcode, RCODE_NOERROR);
        let (canon, addrs) = addresses(&resp, "WWW.example.test.", false);
        assert_eq!(canon, "web.example.test");
        assert_eq!(addrs, vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))]);
        assert!(parse(&r, 0x1235).is_err(), "wrong id");
    }

    #[test]
    fn compression_loops_and_garbage_are_errors() {
        let q = query(1, "a.test", TYPE_A).unwrap();
        let mut r = answer(&q, &[]);
        r[7] = 1;
        r.extend_from_slice(&[0xc0, 12]); // pointer to the question name: fine
        r.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);
        assert!(parse(&r, 1).is_ok());
        let mut looped = r.clone();
        let at = looped.len() - 16;
        looped[at] = 0xc0;
        looped[at + 1] = at as u8; // points at itself
        assert_eq!(parse(&looped, 1).unwrap_err(), DnsError::Malformed);
        for cut in 0..r.len() {
            let _ = parse(&r[..cut], 1);
        }
        assert_eq!(
            query(1, &"x".repeat(64), TYPE_A).unwrap_err(),
            DnsError::BadName
        );
        assert_eq!(query(1, "a..b", TYPE_A).unwrap_err(), DnsError::BadName);
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name(&"10.1.2.3".parse().unwrap()),
            "3.2.1.10.in-addr.arpa"
        );
        assert!(reverse_name(&"::1".parse().unwrap()).starts_with("1.0.0.0.0.0"));
        assert!(reverse_name(&"::1".parse().unwrap()).ends_with(".ip6.arpa"));
    }
}
