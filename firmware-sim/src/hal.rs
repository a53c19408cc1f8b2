//! The virtio HAL: physical = virtual (identity-mapped 0–4 GiB, no IOMMU), DMA pages from a
//! static arena that is never freed (the NIC lives as long as the image).
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// Pages for virtqueues: two queues of 16 entries need four.
const DMA_PAGES: usize = 8;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; DMA_PAGES * PAGE_SIZE]>);

// SAFETY: pages are handed out by the atomic bump pointer below, each range exactly once.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; DMA_PAGES * PAGE_SIZE]));
static NEXT_PAGE: AtomicUsize = AtomicUsize::new(0);

/// The HAL type for `virtio-drivers`.
#[derive(Debug)]
pub struct IdentityHal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned, never-reused memory whose physical address
// equals its address (identity mapping); `share` returns the buffer's own address, which the
// device may access because all RAM is identity-mapped and coherent under QEMU.
unsafe impl Hal for IdentityHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let first = NEXT_PAGE.fetch_add(pages, Ordering::AcqRel);
        assert!(
            first + pages <= DMA_PAGES,
            "virtio DMA arena exhausted ({DMA_PAGES} pages)"
        );
        // SAFETY: `first..first + pages` is inside the arena and was never handed out before.
        let ptr = unsafe { ARENA.0.get().cast::<u8>().add(first * PAGE_SIZE) };
        let ptr = NonNull::new(ptr).expect("static arena is not null");
        (ptr.as_ptr() as PhysAddr, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let end = paddr.checked_add(size as PhysAddr);
        assert!(
            end.is_some_and(|e| e <= 1 << 32),
            "BAR at {paddr:#x} is above 4 GiB, outside the identity map: give QEMU less memory (-m)"
        );
        NonNull::new(usize::try_from(paddr).unwrap_or(0) as *mut u8).expect("BAR address is not 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.cast::<u8>().as_ptr() as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
