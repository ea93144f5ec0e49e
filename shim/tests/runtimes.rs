//! What container runtimes and sandboxes do in the network namespace they make,
//! under netcell: bringing `lo` up and giving it its address are served by the
//! container's stack (its `lo` is up with 127.0.0.1/8), for anyone, as Linux
//! does it for the namespace's own root; other changes still need
//! `CAP_NET_ADMIN`.

mod common;

use common::*;

/// Without any capability, lo's own setup succeeds (ioctl and rtnetlink, with
/// `NLM_F_EXCL` as bubblewrap sends it); taking lo down or adding another
/// address is refused.
fn lo_setup_is_served_for_anyone(mode: Mode) {
    let (st, out, err) = Container::new(mode)
        .exec([
            "setpriv",
            "--bounding-set=-all",
            "--",
            "python3",
            &py("lo_setup.py"),
        ])
        .run();
    assert!(st.success(), "{out} {err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "ioctl lo up ok",
            "ioctl lo down EPERM",
            "netlink lo 127.0.0.1/8 ok",
            "netlink lo up ok",
            "netlink lo 127.0.0.2/8 EPERM",
        ],
        "{err}"
    );
}

in_both_modes!(lo_setup_is_served_for_anyone);

/// `bwrap --unshare-net` inside a container: bubblewrap's loopback setup
/// (rtnetlink, from a new user namespace) succeeds and the sandbox's programs
/// use the container's loopback. (Under `--shim seccomp` netcell's Landlock
/// wall forbids bubblewrap's mounts, so this runs under preload.)
#[test]
fn bubblewrap_with_its_own_network_runs() {
    need("bwrap");
    let script = "import socket\n\
                  l = socket.socket(); l.bind(('127.0.0.1', 8123)); l.listen()\n\
                  c = socket.create_connection(('127.0.0.1', 8123)); print('loopback ok')\n";
    let (st, out, err) = Container::new(Mode::Preload)
        .exec([
            "bwrap",
            "--unshare-user",
            "--unshare-net",
            "--dev-bind",
            "/",
            "/",
            "python3",
            "-c",
            script,
        ])
        .run();
    if err.contains("setting up uid map") || err.contains("No permissions to create new namespace")
    {
        eprintln!("SKIPPED: bubblewrap cannot make user namespaces here: {err}");
        return;
    }
    assert!(st.success(), "{out} {err}");
    assert_eq!(out.trim(), "loopback ok", "{err}");
}
