//! Which local process owns a TCP socket, from Linux's `/proc` (best effort).
//!
//! `/proc/net/tcp` and `/proc/net/tcp6` list every TCP socket of the network namespace with its
//! addresses, state, owner uid and inode; `/proc/<pid>/fd/*` links name the inodes a process
//! holds (`socket:[12345]`). Reading another user's `fd` directory needs that user's uid or
//! `CAP_SYS_PTRACE`, so without them the pid is unknown while the uid still is. Every function
//! here answers `None` rather than failing.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

/// The TCP state `LISTEN` in `/proc/net/tcp`.
const LISTEN: &str = "0A";

/// One socket line of `/proc/net/tcp{,6}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocket {
    /// Local address.
    pub local: SocketAddr,
    /// Remote address (unspecified for a listener).
    pub remote: SocketAddr,
    /// True in state `LISTEN`.
    pub listening: bool,
    /// The owner's uid.
    pub uid: u32,
    /// The socket's inode (0 for sockets no process holds, e.g. `TIME_WAIT`).
    pub inode: u64,
}

/// The process owning a socket, as far as `/proc` tells.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SocketOwner {
    /// The socket's owner uid.
    pub uid: u32,
    /// The process id, when its `fd` directory could be read.
    pub pid: Option<u32>,
    /// The process's executable, when readable.
    pub exe: Option<PathBuf>,
    /// The process's command line, when readable (arguments joined by spaces).
    pub cmdline: Option<String>,
}

/// Parses `0100007F:1F90` (little-endian hex IPv4 as the kernel prints it, then the port).
fn parse_v4(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::new(
        Ipv4Addr::from(ip.to_ne_bytes()).into(),
        port,
    ))
}

/// Parses the IPv6 form: four native-endian 32-bit words in hex, then the port.
fn parse_v6(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    if ip.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
        let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = Ipv6Addr::from(bytes);
    let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
    Some(SocketAddr::new(ip, port))
}

/// Parses one line of `/proc/net/tcp` (`v6`: of `/proc/net/tcp6`).
fn parse_line(line: &str, v6: bool) -> Option<TcpSocket> {
    let mut fields = line.split_whitespace();
    let _slot = fields.next()?;
    let parse = if v6 { parse_v6 } else { parse_v4 };
    let local = parse(fields.next()?)?;
    let remote = parse(fields.next()?)?;
    let state = fields.next()?;
    let mut rest = fields.skip(3);
    let uid = rest.next()?.parse().ok()?;
    let _timeout = rest.next()?;
    let inode = rest.next()?.parse().ok()?;
    Some(TcpSocket {
        local,
        remote,
        listening: state == LISTEN,
        uid,
        inode,
    })
}

/// Every TCP socket of this network namespace matching `wanted`.
pub fn tcp_sockets(wanted: impl FnMut(&TcpSocket) -> bool) -> Vec<TcpSocket> {
    tcp_sockets_on(None, wanted)
}

/// Like [`tcp_sockets`], parsing only lines with `port` as one of their ports (when given):
/// a cheap text test first, so a lookup among thousands of sockets stays fast.
fn tcp_sockets_on(port: Option<u16>, mut wanted: impl FnMut(&TcpSocket) -> bool) -> Vec<TcpSocket> {
    let needle = port.map(|p| format!(":{p:04X} "));
    let mut found = Vec::new();
    for (path, v6) in [("/proc/self/net/tcp", false), ("/proc/self/net/tcp6", true)] {
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        found.extend(
            text.lines()
                .skip(1)
                .filter(|l| needle.as_deref().is_none_or(|n| l.contains(n)))
                .filter_map(|l| parse_line(l, v6))
                .filter(&mut wanted),
        );
    }
    found
}

/// The connected socket whose local end is `local` and remote end `remote` (from the side
/// that owns `local`).
pub fn connection(local: SocketAddr, remote: SocketAddr) -> Option<TcpSocket> {
    tcp_sockets_on(Some(local.port()), |s| {
        s.local == local && s.remote == remote && s.inode != 0
    })
    .into_iter()
    .next()
}

/// The listener on `port` that accepts connections to `addr`'s IP (the exact address, or a
/// wildcard listener).
pub fn listener(addr: SocketAddr) -> Option<TcpSocket> {
    let mut all = tcp_sockets_on(Some(addr.port()), |s| {
        s.listening && s.local.port() == addr.port()
    });
    all.sort_by_key(|s| s.local.ip() != addr.ip());
    all.into_iter()
        .find(|s| s.local.ip() == addr.ip() || s.local.ip().is_unspecified())
}

/// True when `/proc/<pid>/fd` holds the socket `inode`.
fn holds(pid: u32, link: &str) -> bool {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    entries
        .flatten()
        .any(|e| fs::read_link(e.path()).is_ok_and(|t| t.as_os_str() == link))
}

/// The pid holding socket `inode`, owned by `uid`: the `likely` pids first, then every
/// process running as `uid` (a socket is created with its creator's uid; a process that
/// inherited it after changing uid is missed) except the `excluded` ones (a server excludes
/// itself: it holds the other end).
pub fn pid_holding(inode: u64, uid: u32, likely: &[u32], excluded: &[u32]) -> Option<u32> {
    if inode == 0 {
        return None;
    }
    let link = format!("socket:[{inode}]");
    if let Some(pid) = likely.iter().copied().find(|&p| holds(p, &link)) {
        return Some(pid);
    }
    let mut pids: Vec<u32> = fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !excluded.contains(pid))
        .collect();
    // Newest first: a client that is not known yet was most likely started just now (a
    // `curl`, a script), and it may exit soon after its answer.
    pids.sort_unstable_by(|a, b| b.cmp(a));
    pids.into_iter()
        .filter(|pid| fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == uid))
        .find(|&pid| holds(pid, &link))
}

/// The executable of `pid`, when readable.
pub fn exe_of(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// Longest command line kept, in characters.
pub const MAX_CMDLINE_CHARS: usize = 256;

/// The command line of `pid` when readable: arguments joined by spaces, control characters
/// (newlines in a script given with `-c`) shown as spaces, cut at [`MAX_CMDLINE_CHARS`]
/// characters with `…`.
pub fn cmdline_of(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let joined = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(" ");
    let mut text: String = joined
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_CMDLINE_CHARS)
        .collect();
    if joined.chars().count() > MAX_CMDLINE_CHARS {
        text.push('…');
    }
    let text = text.trim_end().to_owned();
    (!text.is_empty()).then_some(text)
}

/// The owner of `socket`: its uid, and its process when `/proc` lets us see it (`likely` pids
/// tried first, `excluded` ones never).
pub fn owner_of(socket: &TcpSocket, likely: &[u32], excluded: &[u32]) -> SocketOwner {
    let pid = pid_holding(socket.inode, socket.uid, likely, excluded);
    SocketOwner {
        uid: socket.uid,
        pid,
        exe: pid.and_then(exe_of),
        cmdline: pid.and_then(cmdline_of),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_lines() {
        let v4 = "   1: 0100007F:C5AE 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 20 4 30 10 -1";
        let s = parse_line(v4, false).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(s.local, "127.0.0.1:50606".parse().unwrap());
            assert_eq!(s.remote, "127.0.0.1:8080".parse().unwrap());
        }
        assert_eq!((s.uid, s.inode, s.listening), (1000, 123_456, false));
        let listen = "   0: 00000000:C4F6 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0";
        let l = parse_line(listen, false).unwrap();
        assert!(l.listening && l.local.port() == 50_422 && l.local.ip().is_unspecified());
        let v6 = "   0: 0000000000000000FFFF00000100007F:C38E 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 42 1 0000000000000000 20 4 30 10 -1";
        let m = parse_line(v6, true).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(m.local, "127.0.0.1:50062".parse().unwrap());
        }
        assert!(parse_line("garbage", false).is_none());
    }

    #[test]
    fn finds_this_process_as_the_owner_of_its_socket() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(server.local_addr().unwrap()).unwrap();
        let (_accepted, peer) = server.accept().unwrap();
        let socket = connection(peer, server.local_addr().unwrap()).expect("in /proc/net/tcp");
        let owner = owner_of(&socket, &[], &[]);
        assert_eq!(owner.pid, Some(std::process::id()));
        assert_eq!(owner.exe, std::env::current_exe().ok());
        let listening = listener(server.local_addr().unwrap()).unwrap();
        assert_eq!(owner_of(&listening, &[], &[]).pid, Some(std::process::id()));
        let me = std::process::id();
        assert_eq!(owner_of(&socket, &[], &[me]).pid, None, "excluded");
        drop(client);
    }
}
