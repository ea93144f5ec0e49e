//! `netcell capture NAME [-i DEV|any] [-w FILE|-] [EXPRESSION]`: a live capture of a
//! running container's traffic as pcapng — the client, which hands its output
//! (a file or its standard output) to the container over the owner socket and
//! then waits, and the container's side, which records into it (see
//! `netcell_stack::capture`). The capture ends when the client goes (Ctrl-C),
//! when the reader of the output goes (`| tcpdump -r - -c 10`), or when the
//! container ends.

use crate::owner;
use netcell_stack::Stack;
use netcell_stack::capture::Expr;
use netcell_stack::device::Link;
use std::io::IsTerminal;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// The client: returns once the capture ends.
pub fn command(
    base: &Path,
    name: &str,
    iface: Option<&str>,
    write: Option<&Path>,
    expr: &[String],
) -> Result<i32, String> {
    let words: Vec<&str> = expr.iter().map(String::as_str).collect();
    if !words.is_empty() {
        // Checked here first, so that a typo is reported before anything starts.
        Expr::parse(&words).map_err(|e| format!("capture expression: {e}"))?;
    }
    let out: OwnedFd = match write {
        Some(p) if p.as_os_str() != "-" => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(p)
            .map_err(|e| format!("cannot open {}: {e}", p.display()))?
            .into(),
        _ => {
            if std::io::stdout().is_terminal() {
                return Err(
                    "pcapng is binary: write it to a file (-w FILE) or a reader (| tcpdump -r -)"
                        .into(),
                );
            }
            std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| e.to_string())?
        }
    };
    let mut req = b"capture\0".to_vec();
    req.extend_from_slice(iface.unwrap_or("any").as_bytes());
    req.push(0);
    req.extend_from_slice(words.join(" ").as_bytes());
    let c = owner::connect(base, name)?;
    let answer = owner::ask(c.as_fd(), &req, &[out.as_fd()])?;
    drop(out);
    eprintln!("{}", String::from_utf8_lossy(&answer).trim_end());
    // Wait until the container ends the capture (its end of the connection
    // closes) or we are stopped.
    let _ = netcell_sys::wait_readable(c.as_fd(), -1);
    Ok(0)
}

/// The container's side: starts the capture, or says why not. `conn` stays with
/// the capture as its lifeline.
pub fn serve(stack: &mut Stack<Link>, conn: OwnedFd, req: &[u8], fds: Vec<OwnedFd>) {
    let fail = |conn: &OwnedFd, e: &str| {
        let _ = netcell_sys::send_nb(conn.as_fd(), format!("error {e}").as_bytes(), 0);
    };
    let text = String::from_utf8_lossy(req);
    let (iface, expr) = text.split_once('\0').unwrap_or((&text, ""));
    let words: Vec<&str> = expr.split_whitespace().collect();
    let expr = if words.is_empty() {
        None
    } else {
        match Expr::parse(&words) {
            Ok(e) => Some(e),
            Err(e) => return fail(&conn, &format!("capture expression: {e}")),
        }
    };
    let Some(out) = fds.into_iter().next() else {
        return fail(&conn, "no output descriptor came with the request");
    };
    // The capture's writer thread writes (and may wait for a slow reader; the
    // stack never does).
    let _ = netcell_sys::set_nonblocking(out.as_fd(), false);
    let file = std::fs::File::from(out);
    let started = match conn.try_clone() {
        Ok(lifeline) => {
            stack
                .interfaces_mut()
                .add_live_capture(Box::new(file), Some(iface), expr, lifeline)
        }
        Err(e) => Err(format!("cannot keep the connection: {e}")),
    };
    match started {
        Ok(()) => {
            log::info!("capture: a live capture of {iface} started");
            let _ = netcell_sys::send_nb(
                conn.as_fd(),
                format!("capturing on {iface}\n").as_bytes(),
                0,
            );
        }
        Err(e) => fail(&conn, &e),
    }
}
