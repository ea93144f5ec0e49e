//! Many connections in one container: the stack spreads them over socket sets
//! ("shards", see `netcell_stack::iface::shards`) once an interface holds more
//! than a few, and every byte must still reach its own connection.

mod common;

use common::*;
use std::io::BufRead;

/// 300 connections to the container's own loopback server and 300 to a kernel
/// peer over the TAP, with `NETCELL_SHARD_HOME_MAX=8` so that nearly all of them
/// are placed in shards: each gets exactly its own bytes back, before and after
/// half of them close, with 3000-byte messages too.
fn many_connections_each_get_their_own_bytes(mode: Mode) {
    require_root!();
    let ns = tap_ns();
    let (_server, mut out) =
        spawn_reading(
            ns.cmd("python3")
                .args([&py("many_conns.py"), "serve", KERNEL, "9400"]),
        );
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "listening\n");
    let (st, out, err) = Container::new(mode)
        .on_tap_ns(&ns)
        .env("NETCELL_SHARD_HOME_MAX", "8")
        .args(["--max-sockets", "4000"])
        .exec([python(), &py("many_conns.py"), KERNEL, "9400", "300"])
        .run();
    assert!(st.success(), "{out} {err}");
    assert_eq!(out, "ok 300\n", "{err}");
}

in_both_modes!(many_connections_each_get_their_own_bytes);
