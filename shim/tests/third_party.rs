//! Third-party test suites, run on the kernel and inside a container, compared
//! test by test: Go's standard library `net` package (`go test -c net`, run from
//! `$(go env GOROOT)/src/net` with `-test.short`) under the seccomp shim, which
//! catches Go's raw system calls.
//!
//! Both runs happen in network namespaces this test creates (loopback only), so
//! nothing reaches any other network. Every test that passes on the kernel must
//! pass in the container, and every test skipped on one side must be skipped on
//! the other, except the tests in [`GO_NET_EXCEPTIONS`] — which must still fail,
//! so that the list shrinks as netcell grows.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

/// Go `net` tests that fail in a container for a reason netcell documents, each
/// with that reason. A test here that starts passing fails this test: take it out.
const GO_NET_EXCEPTIONS: &[(&str, &str)] = &[(
    "TestWriteToUDP",
    "write() on an unconnected UDP socket runs natively on its stand-in under seccomp (no EDESTADDRREQ); see the README's differences",
)];

/// `name → PASS/FAIL/SKIP` of a `go test -test.v` output, subtests included.
fn outcomes(out: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in out.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("--- ")
            && let Some((verdict, tail)) = rest.split_once(": ")
            && ["PASS", "FAIL", "SKIP"].contains(&verdict)
        {
            let name = tail.split_whitespace().next().unwrap_or("");
            m.insert(name.to_string(), verdict.to_string());
        }
    }
    m
}

#[test]
fn go_net_package_tests_pass_as_on_the_kernel() {
    require_root!();
    need("go");
    let goroot = Command::new("go").args(["env", "GOROOT"]).output().unwrap();
    let src =
        std::path::PathBuf::from(String::from_utf8_lossy(&goroot.stdout).trim()).join("src/net");
    let dir = Scratch::new();
    let bin = dir.path("net.test");
    let built = Command::new("go")
        .args(["test", "-c", "-o"])
        .arg(&bin)
        .arg("net")
        .current_dir(&src)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "go test -c net: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    // Go's own timeout fires first, so that a hang names its test.
    let args = ["-test.short", "-test.v", "-test.timeout=100s"];
    // The kernel, in a namespace of its own (loopback only).
    let ns = NetNs::new();
    let mut k = ns.cmd(bin.to_str().unwrap());
    k.args(args).current_dir(&src);
    let (_, kernel_out, _) = run(&mut k);
    let kernel = outcomes(&kernel_out);
    assert!(
        kernel.len() > 200,
        "the kernel run ran too few tests: {kernel_out}"
    );
    // A container, under seccomp (Go's system calls are raw), in another namespace.
    let ns2 = NetNs::new();
    let mut c = Container::new(Mode::Seccomp)
        .in_ns(&ns2)
        .exec([bin.to_str().unwrap()])
        .args(args)
        .command();
    c.current_dir(&src);
    let (_, cell_out, cell_err) = run(&mut c);
    let cell = outcomes(&cell_out);

    let mut differ = Vec::new();
    let mut exceptions_passing = Vec::new();
    for (name, verdict) in &kernel {
        let got = cell.get(name).map(String::as_str).unwrap_or("MISSING");
        let excepted = GO_NET_EXCEPTIONS.iter().any(|(n, _)| n == name);
        if excepted {
            if got == verdict {
                exceptions_passing.push(name.clone());
            }
        } else if got != verdict && !(verdict == "PASS" && got == "PASS") {
            differ.push(format!("{name}: kernel {verdict}, netcell {got}"));
        }
    }
    let count = |m: &BTreeMap<String, String>, v: &str| m.values().filter(|x| *x == v).count();
    eprintln!(
        "go net: kernel {} passed, {} failed, {} skipped; netcell {} passed, {} failed, {} skipped; {} exceptions",
        count(&kernel, "PASS"),
        count(&kernel, "FAIL"),
        count(&kernel, "SKIP"),
        count(&cell, "PASS"),
        count(&cell, "FAIL"),
        count(&cell, "SKIP"),
        GO_NET_EXCEPTIONS.len()
    );
    assert!(
        differ.is_empty(),
        "Go net tests that differ from the kernel:\n{}\n\nnetcell's output:\n{cell_out}\n{cell_err}",
        differ.join("\n")
    );
    assert!(
        exceptions_passing.is_empty(),
        "these exceptions pass now; take them out of GO_NET_EXCEPTIONS: {exceptions_passing:?}"
    );
}
