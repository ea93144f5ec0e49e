//! The command line.

use clap::{Args, Parser, Subcommand};
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};

/// Give a program its own network stack: private loopback, addresses, routes and
/// sockets, in userspace, without root.
#[derive(Parser, Debug)]
#[command(name = "netcell", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Logging: set RUST_LOG (e.g. RUST_LOG=netcell_stack=debug).\n\
Exit status: the command's; 128+N if it died of signal N; 125 if netcell itself failed; \
126 if the command cannot be executed; 127 if it was not found."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// netcell's subcommands. (`run`'s options make its variant large; the value
/// is parsed once per process.)
#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run a command in a new container with its own network stack.
    #[command(after_help = "Examples:\n  \
netcell run -- python3 -m http.server 8080      # a server only the container sees\n  \
netcell run --tap tap0 --addr 10.0.0.2/24 --gateway 10.0.0.1 -- curl http://10.0.0.1/\n  \
netcell run --tap tap0 --addr 10.0.0.2/24 --tap tap1,addr=10.1.0.2/24,gateway=10.1.0.1,mtu=9000 -- ip route\n\n\
Without --tap the container reaches the outside through the host uplink (--uplink host: \
eth0 10.0.2.100/24, gateway 10.0.2.2; no privilege is needed; the outside sees the host's \
address); with --uplink none it has only its own loopback (127.0.0.0/8, ::1). With --tap, netcell attaches to the TAP device IFNAME (creating it needs \
CAP_NET_ADMIN; a persistent device made with `ip tuntap add dev IFNAME mode tap user $USER` \
does not) and the container sends and receives frames there as eth0; each further --tap is \
eth1, eth2, ... with its own settings after its name. Traffic between the \
container's own addresses never leaves it.\n\n\
The boundary (--shim seccomp): no program in the container can open a socket of the host, \
use one it was handed from outside, re-point one the uplink gave it, attach to a TAP device, \
or reach netcell. A Landlock domain keeps \
it from ptracing, reading the memory of or taking descriptors from any process outside \
the container (Landlock ABI 1, Linux 5.13+), denies TCP bind/connect on host sockets \
(ABI 4, Linux 6.7+), and blocks signals to processes outside and abstract unix sockets of \
the host (ABI 6, Linux 6.12+); on an older kernel netcell says at start what is not \
enforced. It is not a filesystem sandbox: services \
of your user on unix sockets (a tmux server, the session bus) stay reachable; run netcell \
inside bubblewrap to hide them. A container started with a host socket on stdin/stdout/\
stderr is refused unless it is a connected TCP stream or a unix socket.")]
    Run(RunArgs),
    /// List your running containers: name, pid, uptime, shim, addresses, command.
    Ls {
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Where the containers' directories are (as given to `run --runtime-dir`).
        #[arg(long, value_name = "DIR")]
        runtime_dir: Option<std::path::PathBuf>,
    },
    /// A running container's counters: per device packets, bytes and errors,
    /// sockets by state, uplink flows.
    Stats {
        /// The container's name (see `netcell ls`).
        name: String,
        /// JSON instead of one counter per line.
        #[arg(long)]
        json: bool,
        /// Where the containers' directories are (as given to `run --runtime-dir`).
        #[arg(long, value_name = "DIR")]
        runtime_dir: Option<std::path::PathBuf>,
    },
    /// Run a command in a running container, under its shim, with your terminal and
    /// environment (like `podman exec`): `netcell exec web -- ip addr`. Exits with
    /// the command's status. In a container `netcell agent` serves, the command
    /// becomes one of the container's processes (its user, capabilities,
    /// namespaces, cgroup, root and seccomp profile) with the environment and
    /// working directory of the container's first process.
    Exec {
        /// The container's name (see `netcell ls`).
        name: String,
        /// Where the containers' directories are (as given to `run --runtime-dir`).
        #[arg(long, value_name = "DIR")]
        runtime_dir: Option<std::path::PathBuf>,
        /// The command to run, and its arguments.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<std::ffi::OsString>,
    },
    /// A running container's packet filter, live: `netcell filter web add input tcp
    /// dport 8080 drop`. The rule syntax is in the README ("The packet filter").
    Filter {
        /// The container's name (see `netcell ls`).
        name: String,
        #[command(subcommand)]
        cmd: FilterCmd,
        /// Where the containers' directories are (as given to `run --runtime-dir`).
        #[arg(long, value_name = "DIR", global = true)]
        runtime_dir: Option<std::path::PathBuf>,
    },
    /// Capture a running container's traffic live, as pcapng: `netcell capture web
    /// -w - port 80 | tcpdump -r -`. Runs until interrupted, until the reader of
    /// its output goes, or until the container ends.
    Capture {
        /// The container's name (see `netcell ls`).
        name: String,
        /// Only this interface of the container (default: any).
        #[arg(short = 'i', long, value_name = "DEV|any")]
        interface: Option<String>,
        /// Write to FILE (`-`: standard output, the default, which must not be a
        /// terminal).
        #[arg(short = 'w', long, value_name = "FILE")]
        write: Option<std::path::PathBuf>,
        /// Which frames: tcpdump-like terms (host, net, port, portrange with src or
        /// dst; tcp, udp, icmp, icmp6, ip, ip6, arp; and, or, not, parentheses).
        #[arg(num_args = 0.., allow_hyphen_values = true, trailing_var_arg = true)]
        expression: Vec<String>,
        /// Where the containers' directories are (as given to `run --runtime-dir`).
        #[arg(long, value_name = "DIR")]
        runtime_dir: Option<std::path::PathBuf>,
    },
    /// L2 segments between containers: `netcell net create NAME`, then `netcell run
    /// --net NAME --addr CIDR -- CMD` in each container; `netcell net ls`, `rm`.
    Net {
        #[command(subcommand)]
        cmd: NetCmd,
        /// Where nets live (default: next to the containers' directories).
        #[arg(long, value_name = "DIR", global = true)]
        runtime_dir: Option<std::path::PathBuf>,
    },
    /// (internal) The holder of a net's namespaces.
    #[command(name = "__net-holder", hide = true)]
    NetHolder {
        name: String,
        dir: std::path::PathBuf,
    },
    /// Serve OCI containers (crun, runc, podman) as their seccomp agent: each
    /// container whose profile names SOCKET as its `listenerPath` (see `netcell
    /// profile`) gets its own stack, configured by its annotations (netcell.addr,
    /// netcell.tap, netcell.gateway, netcell.mtu, netcell.uplink, netcell.publish,
    /// netcell.filter, netcell.pcap, netcell.dns, netcell.mac, netcell.max-sockets).
    /// Containers show in `netcell ls` and `netcell stats` by their id.
    Agent {
        /// The unix socket runtimes connect to.
        #[arg(long, value_name = "SOCKET")]
        listen: std::path::PathBuf,
        /// Where the containers' directories go (as `netcell run --runtime-dir`).
        #[arg(long, value_name = "DIR")]
        runtime_dir: Option<std::path::PathBuf>,
        /// Also take this annotation (repeatable): netcell.tap, netcell.publish,
        /// netcell.filter, netcell.pcap and netcell.map-host-loopback name
        /// files, devices and ports of the agent's, and an image can carry
        /// annotations, so they are refused unless allowed here.
        #[arg(long = "allow-annotation", value_name = "KEY")]
        allow_annotation: Vec<String>,
        /// `netcell run` options every container gets before its annotations'
        /// (`-- --uplink none`, say).
        #[arg(last = true, value_name = "RUN_OPTIONS")]
        defaults: Vec<String>,
    },
    /// Print a seccomp profile for podman, crun or runc that hands a container's
    /// network calls to `netcell agent` (podman: `--security-opt seccomp=FILE`, or
    /// `seccomp_profile` in containers.conf).
    Profile {
        /// The profile to start from (podman's is
        /// /usr/share/containers/seccomp.json); default: allow everything else.
        #[arg(long, value_name = "FILE")]
        base: Option<std::path::PathBuf>,
        /// The agent's socket (its `--listen`).
        #[arg(long, value_name = "SOCKET")]
        listener: std::path::PathBuf,
    },
    /// (internal) The maker of the packet sockets' mirror namespaces.
    #[command(name = "__mirror", hide = true)]
    Mirror {
        /// Its socket to netcell.
        fd: i32,
    },
    /// (internal) The process that starts `netcell exec`'s programs inside a container.
    #[command(name = "__zygote", hide = true)]
    Zygote {
        /// Its socket to netcell.
        fd: i32,
    },
    /// (internal) The process that starts `netcell exec`'s programs in an OCI container.
    #[command(name = "__enter", hide = true)]
    Enter {
        /// Its socket to netcell.
        fd: i32,
    },
}

/// `netcell net` subcommands.
#[derive(Subcommand, Debug)]
pub enum NetCmd {
    /// Make a net: a bridge in a user and network namespace of your own.
    Create {
        /// Its name.
        name: String,
    },
    /// List nets.
    Ls,
    /// Remove a net (its bridge goes once its containers end).
    Rm {
        /// Its name.
        name: String,
    },
}

/// Whether a container without a TAP reaches the outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UplinkMode {
    /// Through sockets of the host (no privilege needed).
    Host,
    /// Not at all: the container has only its loopback.
    None,
}

/// How a container's programs reach its stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ShimMode {
    /// A seccomp user-notification supervisor.
    Seccomp,
    /// An LD_PRELOAD library.
    Preload,
}

/// An `--addr`: a static address or DHCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrArg {
    /// This address and prefix length.
    Static(IpCidr),
    /// From a DHCP server.
    Dhcp,
    /// IPv6 from router advertisements.
    Slaac,
}

fn parse_addr(s: &str) -> Result<AddrArg, String> {
    match s {
        "dhcp" => return Ok(AddrArg::Dhcp),
        "slaac" => return Ok(AddrArg::Slaac),
        _ => {}
    }
    parse_cidr(s).map(AddrArg::Static)
}

/// The settings of one L2 device: an `--tap`/`--tap-fd`'s own options, or, for
/// `eth0`, the stand-alone `--addr`, `--gateway`, `--mtu` and `--mac`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DevOpts {
    /// Its `addr=`s.
    pub addr: Vec<AddrArg>,
    /// Its `gateway=`s.
    pub gateway: Vec<IpAddress>,
    /// Its `mtu=`.
    pub mtu: Option<usize>,
    /// Its `mac=`.
    pub mac: Option<EthernetAddress>,
    /// Its `name=`: the interface's name inside the container.
    pub name: Option<String>,
}

impl DevOpts {
    /// The static addresses.
    pub fn static_addrs(&self) -> Vec<IpCidr> {
        self.addr
            .iter()
            .filter_map(|a| match a {
                AddrArg::Static(c) => Some(*c),
                AddrArg::Dhcp | AddrArg::Slaac => None,
            })
            .collect()
    }

    /// Whether `dhcp` is among the addresses.
    pub fn dhcp(&self) -> bool {
        self.addr.contains(&AddrArg::Dhcp)
    }

    /// Whether `slaac` is among the addresses.
    pub fn slaac(&self) -> bool {
        self.addr.contains(&AddrArg::Slaac)
    }

    /// Adds `more` (the stand-alone options, for eth0); an option given both
    /// ways is an error.
    pub fn merge(&mut self, more: DevOpts) -> Result<(), String> {
        if self.mtu.is_some() && more.mtu.is_some() {
            return Err("eth0's MTU is given twice (--mtu and mtu=); give one".into());
        }
        if self.mac.is_some() && more.mac.is_some() {
            return Err("eth0's MAC address is given twice (--mac and mac=); give one".into());
        }
        self.addr.extend(more.addr);
        self.gateway.extend(more.gateway);
        self.mtu = self.mtu.or(more.mtu);
        self.mac = self.mac.or(more.mac);
        Ok(())
    }
}

/// A device argument: `DEV[,KEY=VALUE]...` (see [`parse_tap`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevArg<T> {
    /// The device: a TAP's name or an inherited descriptor.
    pub dev: T,
    /// Its own settings.
    pub opts: DevOpts,
}

/// The keys a device argument takes.
const DEV_KEYS: &str = "addr=CIDR|dhcp|slaac, gateway=IP, mtu=N, mac=MAC, name=IFNAME";

fn parse_dev_opts(rest: &str) -> Result<DevOpts, String> {
    let mut o = DevOpts::default();
    for part in rest.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}' is not KEY=VALUE (keys: {DEV_KEYS})"))?;
        match k {
            "addr" => o.addr.push(parse_addr(v)?),
            "gateway" | "gw" => o.gateway.push(parse_ip(v)?),
            "mtu" if o.mtu.is_none() => o.mtu = Some(parse_mtu(v)?),
            "mac" if o.mac.is_none() => o.mac = Some(parse_mac(v)?),
            "name" if o.name.is_none() => o.name = Some(parse_ifname(v)?),
            "mtu" | "mac" | "name" => return Err(format!("{k}= is given twice")),
            _ => return Err(format!("unknown key '{k}' (keys: {DEV_KEYS})")),
        }
    }
    Ok(o)
}

/// An interface name as Linux takes it: 1 to 15 bytes, no '/', ':' or space.
fn parse_ifname(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() < 16
        && s != "."
        && s != ".."
        && !s.contains(['/', ':', ',', '='])
        && !s.chars().any(char::is_whitespace);
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not an interface name (1 to 15 bytes, no '/', ':', ',', '=' or spaces)"
        ))
    }
}

/// `--tap IFNAME[,KEY=VALUE]...`.
pub fn parse_tap(s: &str) -> Result<DevArg<String>, String> {
    let (dev, rest) = s.split_once(',').unwrap_or((s, ""));
    Ok(DevArg {
        dev: parse_ifname(dev)?,
        opts: parse_dev_opts(rest)?,
    })
}

/// `--tap-fd FD[,KEY=VALUE]...`.
pub fn parse_tap_fd(s: &str) -> Result<DevArg<i32>, String> {
    let (dev, rest) = s.split_once(',').unwrap_or((s, ""));
    let fd = dev
        .parse::<i32>()
        .ok()
        .filter(|fd| *fd >= 0)
        .ok_or_else(|| format!("'{dev}' is not a file descriptor number"))?;
    Ok(DevArg {
        dev: fd,
        opts: parse_dev_opts(rest)?,
    })
}

impl RunArgs {
    /// The stand-alone device options (eth0's).
    pub fn eth0_opts(&self) -> DevOpts {
        DevOpts {
            addr: self.addr.clone(),
            gateway: self.gateway.clone(),
            mtu: self.mtu,
            mac: self.mac,
            name: None,
        }
    }

    /// Whether some device takes its address by DHCP.
    pub fn dhcp(&self) -> bool {
        self.addr.contains(&AddrArg::Dhcp)
            || self.tap.iter().any(|t| t.opts.dhcp())
            || self.tap_fd.iter().any(|t| t.opts.dhcp())
    }
}

fn parse_cidr(s: &str) -> Result<IpCidr, String> {
    s.parse::<IpCidr>().map_err(|_| {
        format!(
            "'{s}' is not an address with a prefix length, like 10.0.0.2/24 or fd00::2/64 (or dhcp)"
        )
    })
}

/// `[HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|/udp]` into one map per
/// port.
pub fn parse_publish(spec: &str) -> Result<Vec<netcell_stack::publish::PortMap>, String> {
    use netcell_stack::publish::{PortMap, PortProto};
    let bad = |why: &str| {
        format!(
            "'{spec}': {why}; use [HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|/udp], like 8080:80 or 127.0.0.1:5353:53/udp"
        )
    };
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, "tcp")) => (r, PortProto::Tcp),
        Some((r, "udp")) => (r, PortProto::Udp),
        Some((_, p)) => return Err(bad(&format!("unknown protocol '{p}'"))),
        None => (spec, PortProto::Tcp),
    };
    // An IPv6 host address comes in brackets.
    let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, r) = r
            .split_once("]:")
            .ok_or_else(|| bad("an IPv6 address needs ]:"))?;
        let ip: std::net::IpAddr = ip
            .parse()
            .map_err(|_| bad(&format!("'{ip}' is no address")))?;
        (Some(ip), r)
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.as_slice() {
            [_, _] => (None, rest),
            [ip, _, _] => {
                let ip: std::net::IpAddr = ip
                    .parse()
                    .map_err(|_| bad(&format!("'{ip}' is no address")))?;
                (Some(ip), rest.split_once(':').map_or(rest, |x| x.1))
            }
            _ => return Err(bad("expected HOST_PORT:CONTAINER_PORT")),
        }
    };
    let (host, container) = rest
        .split_once(':')
        .ok_or_else(|| bad("expected HOST_PORT:CONTAINER_PORT"))?;
    let range = |r: &str| -> Result<(u16, u16), String> {
        let port = |p: &str| -> Result<u16, String> {
            match p.parse::<u16>() {
                Ok(0) | Err(_) => Err(bad(&format!("'{p}' is not a port (1 to 65535)"))),
                Ok(n) => Ok(n),
            }
        };
        match r.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (port(a)?, port(b)?);
                if b < a {
                    return Err(bad(&format!("the range {a}-{b} runs backwards")));
                }
                Ok((a, b))
            }
            None => port(r).map(|p| (p, p)),
        }
    };
    let (h0, h1) = range(host)?;
    let (c0, c1) = range(container)?;
    if h1 - h0 != c1 - c0 {
        return Err(bad("the host and container ranges differ in length"));
    }
    Ok((0..=h1 - h0)
        .map(|i| PortMap {
            host_ip,
            host_port: h0 + i,
            container_port: c0 + i,
            proto,
        })
        .collect())
}

fn parse_ip(s: &str) -> Result<IpAddress, String> {
    s.parse::<IpAddress>()
        .map_err(|_| format!("'{s}' is not an IPv4 or IPv6 address"))
}

fn parse_mac(s: &str) -> Result<EthernetAddress, String> {
    s.parse::<EthernetAddress>()
        .map_err(|_| format!("'{s}' is not a MAC address, like 02:00:00:00:00:01"))
}

fn parse_mtu(s: &str) -> Result<usize, String> {
    let v: usize = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(68..=65520).contains(&v) {
        return Err(format!("{v} is outside 68..=65520"));
    }
    Ok(v)
}

fn parse_tap_queue(s: &str) -> Result<usize, String> {
    let max = netcell_stack::device::MAX_TAP_QUEUE;
    let v: usize = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v > max {
        return Err(format!("{v} is more than {max} frames"));
    }
    Ok(v)
}

fn parse_domain(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(s.trim_end_matches('.').to_string())
    } else {
        Err(format!("'{s}' is not a domain name"))
    }
}

fn parse_dns_option(s: &str) -> Result<String, String> {
    let (k, v) = s.split_once(':').unwrap_or((s, ""));
    let numeric = matches!(k, "ndots" | "timeout" | "attempts");
    let ok = (numeric && v.parse::<u32>().is_ok())
        || (!numeric
            && v.is_empty()
            && matches!(
                k,
                "rotate" | "use-vc" | "edns0" | "single-request" | "no-aaaa"
            ));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}': use ndots:N, timeout:N, attempts:N, rotate or use-vc"
        ))
    }
}

fn parse_host(s: &str) -> Result<(String, std::net::IpAddr), String> {
    let (name, ip) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}': expected NAME:IP"))?;
    let name = parse_domain(name)?;
    let ip = ip
        .parse()
        .map_err(|_| format!("'{ip}' is not an IPv4 or IPv6 address"))?;
    Ok((name, ip))
}

/// A size in bytes: a number with an optional K, M or G suffix (powers of 1024).
fn parse_size(s: &str) -> Result<usize, String> {
    let (num, mult) = match s.trim().as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1usize << 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let v: usize = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size like 268435456, 256M or 1G"))?;
    let bytes = v
        .checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    if bytes < 1 << 20 {
        return Err(format!(
            "'{s}' is less than 1M: a container needs some buffers"
        ));
    }
    Ok(bytes)
}

/// A positive count.
fn parse_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(format!("'{s}' is not a number of at least 1")),
    }
}

fn parse_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !s.starts_with('.');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}': use 1 to 64 letters, digits, '-', '_' or '.' (not first)"
        ))
    }
}

/// `netcell filter NAME` subcommands.
#[derive(Subcommand, Debug)]
pub enum FilterCmd {
    /// The policies and rules with their handles and counters.
    List,
    /// The rule set as a file `load` and `--filter` read back.
    Save,
    /// Replaces the whole rule set with FILE's, at once (`-`: standard input); a
    /// file with an error is refused with its line and column, and the old set
    /// stays.
    Load {
        /// The rule file.
        file: std::path::PathBuf,
    },
    /// Appends a rule to its chain (`add input tcp dport 8080 drop`), or declares a
    /// chain for `jump` (`add chain web`).
    Add {
        /// The rule (its words; quote braces and strings for the shell).
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true)]
        rule: Vec<String>,
    },
    /// Puts a rule first in its chain, or before the rule with handle --before.
    Insert {
        /// The handle of the rule to insert before.
        #[arg(long, value_name = "HANDLE")]
        before: Option<u32>,
        /// The rule.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true)]
        rule: Vec<String>,
    },
    /// Deletes the rule with this handle.
    Del {
        /// Its handle (`list` shows them).
        handle: u32,
    },
    /// Deletes every rule (the policies stay).
    Flush,
    /// Sets a chain's policy: `policy input drop`.
    Policy {
        /// input, output or forward.
        chain: String,
        /// accept or drop.
        verdict: String,
    },
}

/// Options of `netcell run`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("eth").args(["tap", "tap_fd", "net"]).multiple(false)))]
pub struct RunArgs {
    /// Name of the container (in logs and in its runtime directory's name).
    #[arg(long, value_parser = parse_name)]
    pub name: Option<String>,

    /// A TAP device for the container (attached to if it exists, created
    /// otherwise): the first is eth0, the next eth1, and so on (up to 8). The
    /// device's own settings follow its name, comma-separated:
    /// `--tap tap1,addr=10.1.0.2/24,addr=fd01::2/64,gateway=10.1.0.1,mtu=9000,mac=02:00:00:00:00:01,name=wan`
    /// (`addr` and `gateway` repeat). The stand-alone --addr, --gateway, --mtu and
    /// --mac are eth0's.
    #[arg(long, value_name = "IFNAME[,KEY=VALUE]...", value_parser = parse_tap)]
    pub tap: Vec<DevArg<String>>,

    /// Attach the container to net NAME (`netcell net create NAME`): its eth0 is a
    /// TAP on the net's bridge, shared with the other containers on it.
    #[arg(long, value_name = "NAME")]
    pub net: Option<String>,

    /// An inherited descriptor already attached to a TAP device (opened by a privileged
    /// helper: /dev/net/tun, TUNSETIFF with IFF_TAP | IFF_NO_PI), used as eth0 instead
    /// of --tap: for users who may not open /dev/net/tun.
    /// Repeatable, with the same per-device settings as --tap: `--tap-fd 3,addr=...`.
    #[arg(long, value_name = "FD[,KEY=VALUE]...", value_parser = parse_tap_fd)]
    pub tap_fd: Vec<DevArg<i32>>,

    /// The container's way out without a TAP. `host` (the default when neither --tap
    /// nor --tap-fd is given): eth0 is 10.0.2.100/24 and fd00::100/64 with gateways
    /// 10.0.2.2 and fd00::2 (slirp4netns's numbering); connections and datagrams to
    /// the outside are carried by sockets of netcell's host, which the outside sees
    /// as their source; an established TCP connection is the host's socket itself,
    /// at the kernel's speed. `none`: the container has only its loopback.
    #[arg(long, value_name = "MODE", conflicts_with = "eth")]
    pub uplink: Option<UplinkMode>,

    /// Through the uplink, ADDR stands for the host's loopback (127.0.0.1 or ::1,
    /// same port): `--map-host-loopback 10.0.2.2` reaches a server the host runs on
    /// 127.0.0.1. Without it the host's loopback is out of reach.
    #[arg(long, value_name = "ADDR")]
    pub map_host_loopback: Option<std::net::IpAddr>,

    /// UDP and ping flows through the uplink held at once (each a host socket);
    /// beyond, the least recently used closes.
    #[arg(long, value_name = "N", default_value = "1024", value_parser = parse_count)]
    pub max_uplink_flows: usize,

    /// Publish container ports on the host, podman's syntax:
    /// `[HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|/udp]` (repeat). A TCP
    /// connection to the host port is accepted by the container's listener as the
    /// host's own socket, with the client's true address; UDP (through the uplink
    /// only) arrives with the client's address too. A host port taken elsewhere
    /// fails the start (exit status 125).
    #[arg(short = 'p', long = "publish", value_name = "SPEC", value_parser = parse_publish)]
    pub publish: Vec<Vec<netcell_stack::publish::PortMap>>,

    /// Address of eth0 with its prefix length; repeat for IPv4 and IPv6. `dhcp`:
    /// the IPv4 address, default gateway and nameservers from a DHCP server on the
    /// link (netcell waits up to 10 s for the lease before starting the command,
    /// and renews it). `slaac`: IPv6 addresses and the default route from router
    /// advertisements.
    #[arg(long, value_name = "CIDR|dhcp|slaac", value_parser = parse_addr, requires = "eth")]
    pub addr: Vec<AddrArg>,

    /// Default gateway; repeat for one IPv4 and one IPv6 gateway.
    #[arg(long, value_name = "IP", value_parser = parse_ip, requires = "eth")]
    pub gateway: Vec<IpAddress>,

    /// MTU of eth0 (68 to 65520; default 1500).
    #[arg(long, value_name = "N", value_parser = parse_mtu, requires = "eth")]
    pub mtu: Option<usize>,

    /// MAC address of eth0 (default: random, locally administered).
    #[arg(long, value_parser = parse_mac, requires = "eth")]
    pub mac: Option<EthernetAddress>,

    /// Record every frame of every interface of the container (lo included) into
    /// FILE as pcapng, with the interfaces' names (tcpdump -r, tshark -r and
    /// Wireshark read it). Frames are buffered in memory and written every 200 ms;
    /// when the file cannot keep up, frames are dropped and counted (netcell stats).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<std::path::PathBuf>,

    /// Start with the packet filter rules of FILE (see `netcell filter`; a file with
    /// an error stops the start with its line and column, exit status 125).
    #[arg(long, value_name = "FILE")]
    pub filter: Option<std::path::PathBuf>,

    /// Verify checksums of every frame received on the TAP (by default only frames the
    /// kernel did not vouch for, e.g. ones a netfilter queue rewrote or every frame with
    /// --no-offload, are checked; the kernel's own frames pass unchecked).
    #[arg(long)]
    pub verify_checksums: bool,

    /// Take and send plain frames on the TAP only: no virtio header, no 64 KiB segments
    /// from the kernel, no merged TCP segments or UDP datagrams to it (offload is on by
    /// default; this is for tracing problems).
    #[arg(long, requires = "eth")]
    pub no_offload: bool,

    /// Frames the kernel may queue on each TAP for netcell before it drops the next
    /// (the device's txqueuelen; raised to this, never lowered; 0 leaves it as it is).
    /// Linux gives a TAP 1000: a burst toward a container with thousands of
    /// connections overflows that, and the senders wait for retransmission timeouts.
    /// Raising it needs CAP_NET_ADMIN over the TAP (a warning says when it fails); a
    /// persistent TAP keeps the raised one after netcell exits. 4096 unless given, at
    /// most 65536. Only for the devices netcell opens (--tap, --net): a --tap-fd
    /// device keeps the queue its owner gave it, so --tap-queue with --tap-fd is an
    /// error, not ignored.
    #[arg(long, value_name = "FRAMES", value_parser = parse_tap_queue,
          requires = "eth", conflicts_with = "tap_fd")]
    pub tap_queue: Option<usize>,

    /// A nameserver for the container's resolver (repeat up to 3); the container then
    /// uses its own resolv.conf instead of /etc/resolv.conf.
    #[arg(long, value_name = "IP", value_parser = parse_ip)]
    pub dns: Vec<IpAddress>,

    /// A search domain for the container's resolver (repeat).
    #[arg(long, value_name = "DOMAIN", value_parser = parse_domain)]
    pub dns_search: Vec<String>,

    /// A resolver option (`ndots:N`, `timeout:N`, `attempts:N`, `rotate`, `use-vc`; repeat).
    #[arg(long, value_name = "OPT", value_parser = parse_dns_option)]
    pub dns_option: Vec<String>,

    /// An entry for the container's hosts file, on top of /etc/hosts (repeat).
    #[arg(long, value_name = "NAME:IP", value_parser = parse_host)]
    pub add_host: Vec<(String, std::net::IpAddr)>,

    /// How programs are redirected into the stack. `seccomp` (default): a seccomp
    /// filter hands every socket call to netcell — static binaries, Go programs and
    /// raw system calls included — and the container cannot reach the host's network.
    /// `preload`: an LD_PRELOAD library; control calls are a little faster, but only
    /// dynamically linked programs are redirected and nothing is enforced.
    #[arg(long, value_name = "MODE", default_value = "seccomp")]
    pub shim: ShimMode,

    /// Socket buffers the container's stack may allocate at most (TCP windows, UDP,
    /// ICMP and raw queues); as they fill up, new connections get smaller windows, then
    /// fail with ENOBUFS. K, M, G suffixes.
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_size)]
    pub max_buffer_memory: usize,

    /// Sockets the container may have open at once; beyond, socket() fails with EMFILE
    /// and new connections to its listeners are dropped.
    #[arg(long, value_name = "N", default_value_t = netcell_stack::socket::DEFAULT_MAX_SOCKETS, value_parser = parse_count)]
    pub max_sockets: usize,

    /// Connections between the container's own programs over its loopback are
    /// spliced program to program (one kernel AF_UNIX pair, the stack out of the
    /// data path): faster than the kernel's own loopback, but a few TCP details
    /// differ (an abortive close and a closed listener's backlog end in EOF, not
    /// a reset; a capture or filter rule that starts later does not see them; see
    /// the README). Only while nothing captures or filters and no raw socket is
    /// open.
    #[arg(long)]
    pub loopback_splice: bool,

    /// Connections being set up or waiting to be accepted, over all the container's
    /// listeners; beyond, SYNs are dropped (the peers retry).
    #[arg(long, value_name = "N", default_value_t = netcell_stack::socket::DEFAULT_MAX_PENDING, value_parser = parse_count)]
    pub max_pending: usize,

    /// Calls waiting at once in the seccomp shim (a blocked accept, connect or
    /// receive; each holds a descriptor in netcell); beyond, a call that would wait
    /// fails with ENOBUFS.
    #[arg(long, value_name = "N", default_value = "4096", value_parser = parse_count)]
    pub max_blocked_calls: usize,

    /// Connections to the control socket (preload shim: one per process, and one per
    /// thread making calls at the same moment); beyond, new ones are refused.
    #[arg(long, value_name = "N", default_value_t = netcell_stack::control::server::DEFAULT_MAX_CONNECTIONS, value_parser = parse_count)]
    pub max_control_connections: usize,

    /// Directory for the container's control socket (default: $XDG_RUNTIME_DIR, else the
    /// temporary directory).
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: Option<std::path::PathBuf>,

    /// The command to run, and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<std::ffi::OsString>,

    /// (internal) Serve an OCI container whose seccomp descriptors `netcell
    /// agent` hands over on this socket, instead of running CMD.
    #[arg(long, value_name = "FD", hide = true)]
    pub oci_link: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::parse_publish;
    use netcell_stack::publish::{PortMap, PortProto};

    fn map(ip: Option<&str>, h: u16, c: u16, proto: PortProto) -> PortMap {
        PortMap {
            host_ip: ip.map(|i| i.parse().unwrap()),
            host_port: h,
            container_port: c,
            proto,
        }
    }

    #[test]
    fn publish_specs_as_podman_writes_them() {
        assert_eq!(
            parse_publish("8080:80"),
            Ok(vec![map(None, 8080, 80, PortProto::Tcp)])
        );
        assert_eq!(
            parse_publish("127.0.0.1:5353:53/udp"),
            Ok(vec![map(Some("127.0.0.1"), 5353, 53, PortProto::Udp)])
        );
        assert_eq!(
            parse_publish("[::1]:8080:80/tcp"),
            Ok(vec![map(Some("::1"), 8080, 80, PortProto::Tcp)])
        );
        assert_eq!(
            parse_publish("9000-9001:7000-7001"),
            Ok(vec![
                map(None, 9000, 7000, PortProto::Tcp),
                map(None, 9001, 7001, PortProto::Tcp)
            ])
        );
        for bad in [
            "80",
            "0:80",
            "8080:80/sctp",
            "9000-9002:7000-7001",
            "x:1:2",
            "9-8:9-8",
            "[::1:80:80",
        ] {
            let e = parse_publish(bad).unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
