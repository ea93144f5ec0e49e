//! Builds the preload library (its own cdylib crate, `preload/`) and hands its path
//! to the `netcell` binary, which embeds it: `netcell` then needs no installed
//! library and no configuration, also after `cargo install`. The library is never
//! linked into the binary itself: its exported `socket`, `connect`, ... would
//! interpose on the launcher's own calls.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let preload = manifest_dir.join("preload");
    let release = env::var("PROFILE").as_deref() == Ok("release");
    let target_dir = out.join("preload-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--lib")
        .arg("--manifest-path")
        .arg(preload.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    if release {
        cmd.arg("--release");
    }
    // The outer build's wrappers (clippy, coverage) and target dir are not ours.
    for var in [
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the preload library: {e}"));
    assert!(
        status.success(),
        "building the preload library (shim/preload) failed"
    );

    let so = target_dir
        .join(if release { "release" } else { "debug" })
        .join("libnetcell_preload.so");
    assert!(so.exists(), "preload library missing at {}", so.display());
    println!("cargo:rustc-env=NETCELL_PRELOAD_SO={}", so.display());
    for p in [
        "preload/src",
        "preload/Cargo.toml",
        "../stack/proto/src",
        "../stack/proto/Cargo.toml",
        "frontend/src",
        "frontend/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", Path::new(p).display());
    }
}
