//! The virtio-net NIC as a smoltcp [`Device`], without a heap: receive buffers are a static
//! ring posted to the device; each frame is copied out and its buffer re-posted at once.
#![allow(unsafe_code)]

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::pci::PciTransport;

use crate::hal::IdentityHal;
use crate::pci;
use crate::statics::Once;

/// Virtqueue size (entries per queue).
pub const QUEUE: usize = 16;
/// Receive buffer: virtio-net header (12 bytes) + a 1514-byte Ethernet frame, rounded up.
const RX_LEN: usize = 1536;
/// Largest Ethernet frame (without FCS).
const MTU: usize = 1514;

static RX_RING: Once<[[u8; RX_LEN]; QUEUE]> = Once::new([[0; RX_LEN]; QUEUE]);

type Raw = VirtIONetRaw<IdentityHal, PciTransport, QUEUE>;

/// Why the NIC could not be brought up.
#[derive(Debug)]
pub enum NicError {
    /// No virtio-net function on PCI bus 0.
    NotFound,
    /// The transport or driver refused the device.
    Virtio(&'static str),
}

/// The virtio-net NIC.
pub struct Nic {
    raw: Raw,
    rx: &'static mut [[u8; RX_LEN]; QUEUE],
    /// `tokens[i]`: the virtqueue token of receive buffer `i`.
    tokens: [u16; QUEUE],
    frame: [u8; MTU],
    tx: [u8; MTU],
}

impl core::fmt::Debug for Nic {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Nic")
            .field("mac", &self.mac())
            .finish_non_exhaustive()
    }
}

impl Nic {
    /// Finds the virtio-net function, initialises the driver and posts all receive buffers.
    /// Call once.
    pub fn init() -> Result<Self, NicError> {
        let (mut root, df) = pci::find_virtio_net().ok_or(NicError::NotFound)?;
        let transport = PciTransport::new::<IdentityHal, _>(&mut root, df)
            .map_err(|_| NicError::Virtio("PCI transport"))?;
        let mut raw = Raw::new(transport).map_err(|_| NicError::Virtio("virtio-net init"))?;
        let rx = RX_RING
            .take()
            .ok_or(NicError::Virtio("Nic::init called twice"))?;
        let mut tokens = [0; QUEUE];
        for (buf, token) in rx.iter_mut().zip(&mut tokens) {
            // SAFETY: the buffer is 'static and touched again only after the device returns it
            // (`receive_complete` with the same token and buffer, in `Device::receive`).
            *token = unsafe { raw.receive_begin(buf) }
                .map_err(|_| NicError::Virtio("posting receive buffers"))?;
        }
        Ok(Self {
            raw,
            rx,
            tokens,
            frame: [0; MTU],
            tx: [0; MTU],
        })
    }

    /// The NIC's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.raw.mac_address()
    }

    /// Takes one received frame into `self.frame`, re-posting its buffer; returns its length.
    fn take_frame(&mut self) -> Option<usize> {
        let token = self.raw.poll_receive()?;
        let i = self.tokens.iter().position(|&t| t == token)?;
        let buf = &mut self.rx[i];
        // SAFETY: `buf` is the buffer posted with `token` (tracked in `tokens[i]`).
        let (hdr, len) = unsafe { self.raw.receive_complete(token, buf) }.ok()?;
        let len = len.min(MTU);
        self.frame[..len].copy_from_slice(&buf[hdr..hdr + len]);
        // SAFETY: as in `init`: the buffer is not touched until the device hands it back.
        if let Ok(t) = unsafe { self.raw.receive_begin(buf) } {
            self.tokens[i] = t;
        }
        Some(len)
    }
}

/// A received frame.
pub struct RxToken<'a>(&'a [u8]);

/// Permission to send one frame.
pub struct TxToken<'a> {
    raw: &'a mut Raw,
    buf: &'a mut [u8; MTU],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let frame = &mut self.buf[..len.min(MTU)];
        let r = f(frame);
        // A frame the device refuses is lost, as on a wire; TCP retransmits.
        let _ = self.raw.send(frame);
        r
    }
}

impl Device for Nic {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let len = self.take_frame()?;
        Some((
            RxToken(&self.frame[..len]),
            TxToken {
                raw: &mut self.raw,
                buf: &mut self.tx,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            raw: &mut self.raw,
            buf: &mut self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(1);
        caps
    }
}
