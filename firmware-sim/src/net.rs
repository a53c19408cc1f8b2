//! The network stack: smoltcp over the [`Nic`], two TCP sockets, and [`Conn`], a TCP connection
//! adapted to blocking `embedded_io::{Read, Write}` by polling the interface.

use core::fmt;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use crate::clock::Clock;
use crate::nic::Nic;
use crate::statics::Once;

/// TCP receive buffer: a whole IMDS answer fits, so the server never waits on the guest.
pub const TCP_RX: usize = 8192;
/// TCP send buffer: a whole token request fits (they are 200–600 bytes).
pub const TCP_TX: usize = 2048;

/// TCP sockets: a connection that is done closes in the background while the next one opens
/// on the other socket, so no request waits for the previous connection's FIN handshake.
const SOCKET_COUNT: usize = 2;

static TCP_RX_BUF: Once<[[u8; TCP_RX]; SOCKET_COUNT]> = Once::new([[0; TCP_RX]; SOCKET_COUNT]);
static TCP_TX_BUF: Once<[[u8; TCP_TX]; SOCKET_COUNT]> = Once::new([[0; TCP_TX]; SOCKET_COUNT]);
static SOCKETS: Once<[SocketStorage<'static>; SOCKET_COUNT]> =
    Once::new([SocketStorage::EMPTY; SOCKET_COUNT]);

/// A transport failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// No answer within the deadline.
    TimedOut,
    /// The peer reset the connection or it could not be opened.
    Reset,
    /// The socket refused the operation (wrong state).
    Socket,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TimedOut => "timed out",
            Self::Reset => "connection reset or refused",
            Self::Socket => "socket in the wrong state",
        })
    }
}

impl core::error::Error for NetError {}

impl embedded_io::Error for NetError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            Self::TimedOut => embedded_io::ErrorKind::TimedOut,
            Self::Reset => embedded_io::ErrorKind::ConnectionReset,
            Self::Socket => embedded_io::ErrorKind::Other,
        }
    }
}

/// Static IPv4 configuration.
#[derive(Debug, Clone, Copy)]
pub struct IpConfig {
    /// The guest's address and prefix.
    pub addr: Ipv4Cidr,
    /// Default gateway.
    pub gateway: Ipv4Address,
}

/// The interface, the NIC and the TCP socket.
pub struct Net {
    iface: Interface,
    nic: Nic,
    sockets: SocketSet<'static>,
    tcp: [SocketHandle; SOCKET_COUNT],
    /// The socket of the current (or last) connection.
    current: usize,
    clock: Clock,
    next_port: u16,
}

impl fmt::Debug for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Net")
            .field("nic", &self.nic)
            .finish_non_exhaustive()
    }
}

impl Net {
    /// Brings the interface up on `nic` with a static address.
    ///
    /// # Panics
    /// If called twice (the socket buffers are static and taken once).
    pub fn new(mut nic: Nic, ip: IpConfig, clock: Clock) -> Self {
        let mac = EthernetAddress(nic.mac());
        let mut config = Config::new(mac.into());
        config.random_seed = crate::clock::rdtsc();
        let now = Instant::from_micros_const(0);
        let mut iface = Interface::new(config, &mut nic, now);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::Ipv4(ip.addr));
        });
        let _ = iface.routes_mut().add_default_ipv4_route(ip.gateway);
        let rx = TCP_RX_BUF.take().expect("Net::new called once");
        let tx = TCP_TX_BUF.take().expect("Net::new called once");
        let storage = SOCKETS.take().expect("Net::new called once");
        let mut sockets = SocketSet::new(&mut storage[..]);
        let mut bufs = rx.iter_mut().zip(tx.iter_mut()).map(|(rx, tx)| {
            tcp::Socket::new(
                tcp::SocketBuffer::new(&mut rx[..]),
                tcp::SocketBuffer::new(&mut tx[..]),
            )
        });
        let tcp = core::array::from_fn(|_| sockets.add(bufs.next().expect("one per handle")));
        let next_port = 49152 + u16::try_from(config_port_seed() % 8192).unwrap_or(0);
        Self {
            iface,
            nic,
            sockets,
            tcp,
            current: 0,
            clock,
            next_port,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(i64::try_from(self.clock.micros()).unwrap_or(i64::MAX))
    }

    /// Runs the stack once: moves frames between the NIC and the socket.
    pub fn poll(&mut self) {
        let now = self.now();
        self.iface.poll(now, &mut self.nic, &mut self.sockets);
    }

    /// Halts until smoltcp wants to be polled, a frame may have arrived (the NIC raises no
    /// interrupt here, so at most [`RX_NAP_US`]), or `deadline_us`, whichever is first.
    fn nap(&mut self, deadline_us: u64) {
        let delay = self
            .iface
            .poll_delay(self.now(), &self.sockets)
            .map_or(RX_NAP_US, |d| d.total_micros())
            .min(RX_NAP_US);
        let until = self.clock.micros().saturating_add(delay).min(deadline_us);
        crate::idle::sleep_until(&self.clock, until);
    }

    /// Between requests: keeps the stack polled (closing connections finish) and otherwise
    /// halts until `deadline_us`, waking only when smoltcp has a timer due.
    pub fn idle_until(&mut self, deadline_us: u64) {
        loop {
            self.poll();
            let now = self.clock.micros();
            if now >= deadline_us {
                return;
            }
            let until = self
                .iface
                .poll_delay(self.now(), &self.sockets)
                .map_or(deadline_us, |d| now.saturating_add(d.total_micros().max(1)))
                .min(deadline_us);
            crate::idle::sleep_until(&self.clock, until);
        }
    }

    fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.tcp[self.current])
    }

    /// Opens a TCP connection to `addr:port`, waiting up to `timeout_ms` for the handshake.
    pub fn connect(
        &mut self,
        addr: Ipv4Address,
        port: u16,
        timeout_ms: u64,
    ) -> Result<Conn<'_>, NetError> {
        let local = self.next_port;
        self.next_port = if local >= 65_000 { 49152 } else { local + 1 };
        // Use a socket that has finished closing; if none has, reset the older one.
        let next = (self.current + 1) % SOCKET_COUNT;
        self.current = (0..SOCKET_COUNT)
            .map(|k| (next + k) % SOCKET_COUNT)
            .find(|&k| self.sockets.get::<tcp::Socket>(self.tcp[k]).state() == State::Closed)
            .unwrap_or(next);
        if self.socket().state() != State::Closed {
            self.socket().abort();
            self.poll();
        }
        let cx = self.iface.context();
        self.sockets
            .get_mut::<tcp::Socket>(self.tcp[self.current])
            .connect(cx, (addr, port), local)
            .map_err(|_| NetError::Socket)?;
        let deadline = self.clock.micros() + timeout_ms * 1000;
        let conn = Conn {
            net: self,
            deadline,
        };
        loop {
            conn.net.poll();
            match conn.net.socket().state() {
                State::Established => return Ok(conn),
                State::Closed => return Err(NetError::Reset),
                _ => {
                    conn.check_deadline()?;
                    let deadline = conn.deadline;
                    conn.net.nap(deadline);
                }
            }
        }
    }
}

fn config_port_seed() -> u64 {
    crate::clock::rdtsc() >> 4
}

/// Longest nap while waiting for the network: the NIC is polled, so a frame that arrives
/// during a nap is seen when it ends.
const RX_NAP_US: u64 = 500;

/// An open TCP connection. Reads and writes block (polling the interface) until progress, the
/// peer's close or the deadline. Dropping it closes the connection.
pub struct Conn<'n> {
    net: &'n mut Net,
    deadline: u64,
}

impl fmt::Debug for Conn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("deadline_us", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Conn<'_> {
    fn check_deadline(&self) -> Result<(), NetError> {
        if self.net.clock.micros() > self.deadline {
            Err(NetError::TimedOut)
        } else {
            Ok(())
        }
    }
}

impl embedded_io::ErrorType for Conn<'_> {
    type Error = NetError;
}

impl embedded_io::Read for Conn<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            self.net.poll();
            let socket = self.net.socket();
            if socket.can_recv() {
                return socket.recv_slice(buf).map_err(|_| NetError::Socket);
            }
            if !socket.may_recv() {
                // The peer sent FIN (or reset the connection) and everything was read.
                return Ok(0);
            }
            self.check_deadline()?;
            let deadline = self.deadline;
            self.net.nap(deadline);
        }
    }
}

impl embedded_io::Write for Conn<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            self.net.poll();
            let socket = self.net.socket();
            if !socket.may_send() {
                return Err(NetError::Reset);
            }
            if socket.can_send() {
                let n = socket.send_slice(buf).map_err(|_| NetError::Socket)?;
                self.net.poll();
                return Ok(n);
            }
            self.check_deadline()?;
            let deadline = self.deadline;
            self.net.nap(deadline);
        }
    }

    fn flush(&mut self) -> Result<(), NetError> {
        loop {
            self.net.poll();
            let socket = self.net.socket();
            if socket.send_queue() == 0 || !socket.may_send() {
                return Ok(());
            }
            self.check_deadline()?;
            let deadline = self.deadline;
            self.net.nap(deadline);
        }
    }
}

impl Drop for Conn<'_> {
    /// Starts a graceful close (FIN) and returns: the handshake finishes on later polls while
    /// the next connection uses the other socket.
    fn drop(&mut self) {
        self.net.socket().close();
        self.net.poll();
    }
}
