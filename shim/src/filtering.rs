//! `netcell filter NAME ...`: the owner's side of a running container's packet
//! filter — the client that sends one request over the owner socket, and the
//! container's side that serves it on its stack's filter (see
//! `netcell_stack::filter`).

use crate::owner::{self, MAX_MSG};
use netcell_stack::Stack;
use netcell_stack::device::Link;
use std::os::fd::AsFd;
use std::path::Path;

/// `netcell filter NAME ...`.
pub fn command(base: &Path, name: &str, cmd: crate::cli::FilterCmd) -> Result<i32, String> {
    use crate::cli::FilterCmd as F;
    match cmd {
        F::List => request(base, name, "list", b""),
        F::Save => request(base, name, "save", b""),
        F::Load { file } => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .map_err(|e| format!("reading standard input: {e}"))?;
                s
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?
            };
            // Checked here first, so that the error names the file.
            if let Err(e) = netcell_stack::filter::parse::parse_ruleset(&text) {
                return Err(format!("{}: {e}", file.display()));
            }
            request(base, name, "load", text.as_bytes())
        }
        F::Add { rule } => request(base, name, "add", rule.join(" ").as_bytes()),
        F::Insert { before, rule } => {
            let arg = format!(
                "{}\0{}",
                before.map(|b| b.to_string()).unwrap_or_default(),
                rule.join(" ")
            );
            request(base, name, "insert", arg.as_bytes())
        }
        F::Del { handle } => request(base, name, "del", handle.to_string().as_bytes()),
        F::Flush => request(base, name, "flush", b""),
        F::Policy { chain, verdict } => request(
            base,
            name,
            "policy",
            format!("{chain} {verdict}").as_bytes(),
        ),
    }
}

/// Serves a `netcell filter` request (`SUBCOMMAND\0ARGUMENT`) on the stack's
/// filter; the answer is text, or `error ...`.
pub fn serve(stack: &mut Stack<Link>, req: &[u8]) -> String {
    use netcell_stack::filter::{parse, rules::Chain};
    let text = String::from_utf8_lossy(req);
    let (cmd, arg) = text.split_once('\0').unwrap_or((&text, ""));
    let mut f = stack.interfaces().filter().borrow_mut();
    let answer = match cmd {
        "list" => {
            use netcell_stack::filter::rules::Family;
            let mut out = String::new();
            let word = |a: bool| if a { "accept" } else { "drop" };
            for c in Chain::ALL {
                let set = f.ruleset();
                let (v4, v6) = (
                    set.accepts_in(&c, Family::Ip),
                    set.accepts_in(&c, Family::Ip6),
                );
                if v4 != v6 {
                    // Each family's own (iptables and ip6tables set them apart).
                    for fam in Family::ALL {
                        let n = f.policy_count_in(&c, fam);
                        out.push_str(&format!(
                            "policy {} {} {} # packets {} bytes {}\n",
                            fam.name(),
                            c.name(),
                            word(set.accepts_in(&c, fam)),
                            n.packets,
                            n.bytes
                        ));
                    }
                    continue;
                }
                let n = f.policy_count(&c);
                out.push_str(&format!(
                    "policy {} {} # packets {} bytes {}\n",
                    c.name(),
                    word(v4),
                    n.packets,
                    n.bytes
                ));
            }
            for l in f.list() {
                out.push_str(&format!(
                    "{} # handle {} packets {} bytes {}\n",
                    l.rule, l.handle, l.count.packets, l.count.bytes
                ));
            }
            out
        }
        "save" => f.ruleset().to_string(),
        "load" => match parse::parse_ruleset(arg) {
            Ok(set) => {
                let n = set.rules.len();
                f.replace(set);
                log::info!("filter: {n} rules loaded by the owner");
                format!("{n} rules loaded\n")
            }
            Err(e) => format!("error {e}"),
        },
        "add" | "insert" => {
            let (before, rule) = match arg.split_once('\0') {
                Some((b, r)) if cmd == "insert" => (b.parse::<u32>().ok(), r),
                _ => (None, arg),
            };
            let chains = f.ruleset().chains.clone();
            match parse::parse_rule(rule, &chains) {
                Ok(parse::Addition::Chain(n)) => match f.add_chain(n.clone()) {
                    Ok(()) => format!("chain {n}\n"),
                    Err(e) => format!("error {e}"),
                },
                Ok(parse::Addition::Rule(r)) => {
                    // `insert` without a handle: the top of the rule's chain.
                    let before = before.or_else(|| {
                        (cmd == "insert")
                            .then(|| {
                                f.ruleset()
                                    .rules
                                    .iter()
                                    .find(|(_, x)| x.chain == r.chain)
                                    .map(|(h, _)| *h)
                            })
                            .flatten()
                    });
                    match f.add(r, before) {
                        Ok(h) => format!("handle {h}\n"),
                        Err(e) => format!("error {e}"),
                    }
                }
                Err(e) => format!("error {}", e.to_string().replacen("line 1, ", "", 1)),
            }
        }
        "del" => match arg.parse::<u32>() {
            Ok(h) => match f.delete(h) {
                Ok(r) => format!("deleted: {r}\n"),
                Err(e) => format!("error {e}"),
            },
            Err(_) => {
                format!("error '{arg}' is not a rule handle (netcell filter NAME list shows them)")
            }
        },
        "flush" => {
            f.flush();
            "flushed\n".to_string()
        }
        "policy" => match parse::parse_policy(&format!("policy {arg}")) {
            Ok((fam, c, a)) => {
                f.set_policy(&c, fam, a);
                format!(
                    "policy {}{} {}\n",
                    fam.map(|x| format!("{} ", x.name())).unwrap_or_default(),
                    c.name(),
                    if a { "accept" } else { "drop" }
                )
            }
            Err(e) => format!("error {}", e.msg),
        },
        o => format!("error unknown filter request '{o}'"),
    };
    if answer.len() > MAX_MSG {
        return format!(
            "error the answer ({} bytes) is larger than the owner socket carries ({MAX_MSG})",
            answer.len()
        );
    }
    answer
}

/// `netcell filter NAME ...`: sends one request, prints the answer.
pub fn request(base: &Path, name: &str, cmd: &str, arg: &[u8]) -> Result<i32, String> {
    let mut req = b"filter\0".to_vec();
    req.extend_from_slice(cmd.as_bytes());
    req.push(0);
    req.extend_from_slice(arg);
    if req.len() > MAX_MSG {
        return Err(format!(
            "the request is {} bytes; the owner socket carries at most {MAX_MSG} (split the rule file)",
            req.len()
        ));
    }
    let c = owner::connect(base, name)?;
    let answer = owner::ask(c.as_fd(), &req, &[])?;
    print!("{}", String::from_utf8_lossy(&answer));
    Ok(0)
}
