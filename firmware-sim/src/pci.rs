//! PCI configuration space through ports 0xCF8/0xCFC, and finding the virtio-net function.
#![allow(unsafe_code)]

use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::{Command, ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::virtio_device_type;

use crate::port::{inl, outl};

const CONFIG_ADDRESS: u16 = 0xCF8;
const CONFIG_DATA: u16 = 0xCFC;

/// Configuration mechanism #1 (port I/O). Zero-sized; there is one CPU and no interrupts, so
/// the address/data pair is never used concurrently.
#[derive(Debug)]
pub struct PortCam;

fn address(df: DeviceFunction, offset: u8) -> u32 {
    0x8000_0000
        | (u32::from(df.bus) << 16)
        | (u32::from(df.device) << 11)
        | (u32::from(df.function) << 8)
        | u32::from(offset & 0xFC)
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, device_function: DeviceFunction, register_offset: u8) -> u32 {
        // SAFETY: selecting a configuration register and reading it has no other effect.
        unsafe {
            outl(CONFIG_ADDRESS, address(device_function, register_offset));
            inl(CONFIG_DATA)
        }
    }

    fn write_word(&mut self, device_function: DeviceFunction, register_offset: u8, data: u32) {
        // SAFETY: the driver writes registers of the device it owns (BARs, command).
        unsafe {
            outl(CONFIG_ADDRESS, address(device_function, register_offset));
            outl(CONFIG_DATA, data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        Self
    }
}

/// Finds the first virtio-net function on bus 0 and enables memory decoding and bus mastering.
/// `SeaBIOS` has already assigned its BARs.
pub fn find_virtio_net() -> Option<(PciRoot<PortCam>, DeviceFunction)> {
    let mut root = PciRoot::new(PortCam);
    let (df, _) = root
        .enumerate_bus(0)
        .find(|(_, info)| virtio_device_type(info) == Some(DeviceType::Network))?;
    root.set_command(
        df,
        Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER,
    );
    Some((root, df))
}
