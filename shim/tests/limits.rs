//! Limits against a hostile container: every resource a container can make
//! netcell hold has one, and floods until a limit breaks leave netcell serving —
//! buffer memory, sockets, blocked calls, control connections, forking
//! processes — and calls that once crashed the stack answer as on Linux.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

#[test]
fn a_flood_of_control_connections_does_not_shut_the_stack_for_good() {
    // The container opens connections to its own control socket until netcell is
    // out of descriptors, holds them, and leaves; then a new program must be served.
    let dir = Scratch::new();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let flag = dir.path("go");
    let script = format!(
        r#"
import os, socket, sys, time
while not os.path.exists("{flag}"): time.sleep(0.05)
ctl = os.environ["NETCELL_CONTROL"]
kids = []
for k in range(6):
    pid = os.fork()
    if pid == 0:
        held = []
        for i in range(400):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.setblocking(False)
            try: s.connect(ctl); held.append(s)
            except OSError: s.close()
        time.sleep(1.5)
        os._exit(0)
    kids.append(pid)
for p in kids: os.waitpid(p, 0)
print("flood over", flush=True)
# A new program of the container (bounded: a stack that no longer accepts would
# leave it waiting for ever).
import subprocess
client = "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); print('served after the flood', s.getsockname()[0])"
try:
    r = subprocess.run([sys.executable, "-c", client], capture_output=True, text=True, timeout=20)
    print(r.stdout.strip() or r.stderr.strip(), flush=True)
except subprocess.TimeoutExpired:
    print("the new program hung", flush=True)
"#,
        flag = flag.display()
    );
    let mut c = unprivileged(Path::new(python()));
    c.args(["-c", PID_LAUNCHER])
        .arg(netcell_for_all())
        .args([
            "run",
            "--uplink",
            "none",
            "--shim",
            "preload",
            "--runtime-dir",
        ])
        .arg(&dir.0)
        .args(["--", python(), "-c", &script]);
    let (p, mut stdout, pid) = spawn_with_pid(&mut c);
    // Few descriptors: the flood (2400 connections) exhausts them.
    std::thread::sleep(Duration::from_millis(300));
    limit_descriptors(pid, 200);
    std::fs::write(&flag, "").unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    let (st, _, err) = p.wait_output(T);
    assert!(st.success(), "{out}\n{err}");
    assert!(out.contains("flood over"), "{out}\n{err}");
    assert!(
        out.contains("served after the flood 127.0.0.1"),
        "{out}\n{err}"
    );
}

#[test]
fn unread_loopback_connections_stay_within_the_buffer_budget() {
    // 1200 connection pairs whose receivers never read, filled for 5 s: the
    // review's build grew to 5 GiB. With a 64 MiB budget, netcell's resident memory
    // stays under it plus its own structures (about 16 MiB here), new connections
    // fail with ENOBUFS once it is spent, and the memory comes back when they close.
    let (st, out, err) = Container::nobody()
        .args(["--max-buffer-memory", "64M"])
        .sh(&format!(
            "exec {} {} 1200 5 $PPID",
            python(),
            py("memflood.py")
        ))
        .run();
    assert!(st.success(), "{out} {err}");
    let f = facts(&out);
    let rss: usize = f["rss_kib"].parse().unwrap();
    let pairs: usize = f["pairs"].parse().unwrap();
    assert!(
        rss < (64 + 48) * 1024,
        "netcell holds {rss} KiB with {pairs} pairs:\n{out}"
    );
    assert!(
        pairs >= 200,
        "smaller windows should let many pairs in: {out}"
    );
    if pairs < 1200 {
        assert_eq!(f["stopped"], "No_buffer_space_available", "{out}");
    }
    assert_eq!(f["after"], (1 << 20).to_string(), "{out}\n{err}");
}

#[test]
fn sockets_beyond_the_limit_fail_with_emfile() {
    let script = "import socket\nheld = []\ntry:\n  while True: held.append(socket.socket())\nexcept OSError as e: print('sockets', len(held), e.errno)\nfor s in held[:10]: s.close()\ns = socket.socket(); s.bind(('127.0.0.1', 0)); print('after close', s.getsockname()[0])";
    for mode in [Mode::Seccomp, Mode::Preload] {
        let (st, out, err) = Container::nobody()
            .shim(mode)
            .args(["--max-sockets", "100"])
            .exec([python(), "-c", script])
            .run();
        assert!(st.success(), "{out} {err}");
        assert!(
            out.contains(&format!("sockets 100 {}\n", libc::EMFILE)),
            "{mode:?}: {out} {err}"
        );
        assert!(out.contains("after close 127.0.0.1"), "{out}");
    }
}

#[test]
fn calls_waiting_beyond_the_limit_fail_with_enobufs() {
    // Each blocked call holds a descriptor in netcell: at most --max-blocked-calls.
    let script = r#"
import socket, threading, time, errno
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
results = []
def acc():
    try: l.accept(); results.append("accepted")
    except OSError as e: results.append(errno.errorcode[e.errno])
ts = [threading.Thread(target=acc, daemon=True) for _ in range(16)]
for t in ts: t.start()
time.sleep(1)
print("refused", results.count("ENOBUFS"))
for _ in range(10): socket.create_connection(l.getsockname())
time.sleep(0.5)
print("accepted", results.count("accepted"))
"#;
    let (st, out, err) = Container::nobody()
        .args(["--max-blocked-calls", "10"])
        .exec([python(), "-c", script])
        .run();
    assert!(st.success(), "{out} {err}");
    let f = facts(&out);
    assert_eq!(f["refused"], "6", "{out} {err}");
    assert_eq!(f["accepted"], "10", "{out} {err}");
}

fn calls_that_crashed_the_stack_answer_as_on_linux(mode: Mode) {
    // Mixed-family UDP sends (smoltcp panicked), SIOCGIFHWADDR of lo (an assertion),
    // a UDP stand-in shut for writing (a busy loop that froze every call), more
    // multicast sources than Linux allows (unbounded): each answered as the host
    // kernel answers, and the stack serves on.
    same_as_the_host(Container::nobody().shim(mode), "crashers.py", &[]);
}

#[test]
fn processes_that_keep_forking_do_not_outlive_the_container() {
    // A process that forks all the time, its pid new every moment, and ignores
    // SIGTERM: when the command ends, netcell must leave none of it behind.
    let (_, stat) = attack();
    let marker = unique("churn-marker-");
    let (st, out, err) = Container::nobody()
        .exec([stat])
        .args(["churn", "8", &marker])
        .run();
    assert!(st.success(), "{out} {err}");
    std::thread::sleep(Duration::from_millis(500));
    let survivors: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmd)
                .contains(&marker)
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    for p in &survivors {
        // Clean up before failing (only our own marked processes).
        if let Ok(pid) = p.parse::<i32>() {
            // SAFETY: signalling a process this test started (it carries the marker).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    assert!(
        survivors.is_empty(),
        "container processes outlived it: {survivors:?}"
    );
}

in_both_modes!(calls_that_crashed_the_stack_answer_as_on_linux);
