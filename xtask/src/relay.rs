//! `cargo xtask relay 127.0.0.1:PORT [--record DIR]`: the program QEMU starts (through
//! `guestfwd=…-cmd:`) once per guest connection to 169.254.169.254:80.
//!
//! QEMU wires stdin, stdout and stderr to the guest's TCP stream, so this copies bytes between
//! them and the server and never prints anything else: every failure is silent and ends the
//! process (which closes the guest's connection). It connects only to loopback addresses.
//! With `--record DIR` it also writes the guest's bytes to a new file in `DIR`, so the caller
//! can check them byte for byte.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

/// Parsed arguments.
struct Args {
    target: SocketAddr,
    record: Option<PathBuf>,
}

fn parse(args: &[String]) -> Option<Args> {
    let mut it = args.iter();
    let target: SocketAddr = it.next()?.parse().ok()?;
    if !target.ip().is_loopback() {
        return None;
    }
    let mut record = None;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--record" => record = Some(PathBuf::from(it.next()?)),
            _ => return None,
        }
    }
    Some(Args { target, record })
}

/// Runs the relay; `args` follow the word `relay`.
pub fn main(args: &[String]) -> ExitCode {
    let Some(args) = parse(args) else {
        return ExitCode::from(2);
    };
    let Ok(server) = TcpStream::connect(args.target) else {
        return ExitCode::FAILURE;
    };
    let _ = server.set_nodelay(true);
    let Ok(mut to_server) = server.try_clone() else {
        return ExitCode::FAILURE;
    };
    let record = args.record.and_then(|dir| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        File::create(dir.join(format!("conn-{nanos}-{}.bin", std::process::id()))).ok()
    });

    // Guest → server. When the guest closes its side, half-close the server connection.
    thread::spawn(move || {
        let mut record = record;
        let mut stdin = io::stdin().lock();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(f) = record.as_mut() {
                        let _ = f.write_all(&buf[..n]);
                    }
                    if to_server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_server.shutdown(Shutdown::Write);
    });

    // Server → guest. The server's close ends the process, which closes the guest's stream.
    let mut from_server = server;
    let mut stdout = io::stdout().lock();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from_server.read(&mut buf) {
            Ok(0) | Err(_) => return ExitCode::SUCCESS,
            Ok(n) => {
                if stdout
                    .write_all(&buf[..n])
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    return ExitCode::FAILURE;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn relays_only_to_loopback() {
        let ok =
            |v: &[&str]| parse(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).is_some();
        assert!(ok(&["127.0.0.1:8080"]));
        assert!(ok(&["127.0.0.1:8080", "--record", "/tmp/x"]));
        assert!(ok(&["[::1]:80"]));
        assert!(!ok(&["169.254.169.254:80"]));
        assert!(!ok(&["10.0.0.1:80"]));
        assert!(!ok(&["127.0.0.1:80", "--bogus"]));
        assert!(!ok(&[]));
    }
}
