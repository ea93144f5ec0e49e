//! `netcell`: run programs in a container with its own userspace network stack.
//!
//! See `netcell run --help`. The stack itself is the `netcell-stack` crate; this
//! binary is its launcher: it builds a container's stack, starts the command with
//! the preload shim, serves the stack until the command exits, and cleans up.
#![forbid(unsafe_code)]

mod capturing;
mod cli;
mod enter;
mod filtering;
mod mirror;
mod net;
mod oci;
mod oci_state;
mod owner;
mod preload_lib;
mod run;
mod seccomp;
mod zygote;
use netcell_sys as sys;
use netcell_sys::spawn;

use clap::Parser;

fn main() {
    if !sys::started_non_dumpable() {
        eprintln!("netcell: the start-up code that makes netcell non-dumpable did not run");
        std::process::exit(125);
    }
    sys::large_allocations_from_mmap();
    let cli = cli::Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    let r = match cli.command {
        cli::Command::Run(args) => run::run(args),
        cli::Command::Ls { json, runtime_dir } => {
            owner::ls(&owner::base_dir(runtime_dir.as_deref()), json)
        }
        cli::Command::Stats {
            name,
            json,
            runtime_dir,
        } => owner::stats(&owner::base_dir(runtime_dir.as_deref()), &name, json),
        cli::Command::Exec {
            name,
            runtime_dir,
            command,
        } => owner::exec(&owner::base_dir(runtime_dir.as_deref()), &name, &command),
        cli::Command::Filter {
            name,
            cmd,
            runtime_dir,
        } => filtering::command(&owner::base_dir(runtime_dir.as_deref()), &name, cmd),
        cli::Command::Capture {
            name,
            interface,
            write,
            expression,
            runtime_dir,
        } => capturing::command(
            &owner::base_dir(runtime_dir.as_deref()),
            &name,
            interface.as_deref(),
            write.as_deref(),
            &expression,
        ),
        cli::Command::Zygote { fd } => Ok(zygote::main(fd)),
        cli::Command::Enter { fd } => Ok(enter::main(fd)),
        cli::Command::Mirror { fd } => mirror::helper_main(fd),
        cli::Command::Agent {
            listen,
            runtime_dir,
            allow_annotation,
            defaults,
        } => oci::agent(
            &listen,
            runtime_dir.as_deref(),
            &allow_annotation,
            &defaults,
        ),
        cli::Command::Profile { base, listener } => oci::profile(base.as_deref(), &listener),
        cli::Command::Net { cmd, runtime_dir } => {
            let base = net::base_dir(runtime_dir.as_deref());
            match cmd {
                cli::NetCmd::Create { name } => net::create(&base, &name),
                cli::NetCmd::Ls => net::ls(&base),
                cli::NetCmd::Rm { name } => net::rm(&base, &name),
            }
        }
        cli::Command::NetHolder { name, dir } => net::holder_main(&name, &dir),
    };
    let code = match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netcell: {e}");
            125
        }
    };
    std::process::exit(code);
}
