//! `netcell`: run programs in a container with its own userspace network stack.
//!
//! See `netcell run --help`. The stack itself is the `netcell-stack` crate; this
//! binary is its launcher: it builds a container's stack, starts the command with
//! the preload shim, serves the stack until the command exits, and cleans up.
#![deny(unsafe_code)]

mod cli;
mod preload_lib;
mod run;
mod seccomp;
mod spawn;
mod sys;

use clap::Parser;

fn main() {
    sys::large_allocations_from_mmap();
    let cli = cli::Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    let code = match cli.command {
        cli::Command::Run(args) => match run::run(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("netcell: {e}");
                125
            }
        },
    };
    std::process::exit(code);
}
