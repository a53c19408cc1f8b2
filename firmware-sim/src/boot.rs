//! Boot: the PVH ELF note, the 32-bit entry stub that enters long mode, and access to what the
//! stub leaves behind (the TSC at entry, QEMU's `hvm_start_info`, the stack bounds).
//!
//! QEMU's `-kernel` loads the ELF at its physical addresses and jumps to the address in the
//! `XEN_ELFNOTE_PHYS32_ENTRY` note in 32-bit protected mode, paging off, `ebx` pointing at
//! `hvm_start_info`. The stub zeroes `.bss`, paints the stack with [`STACK_PAINT`], identity-maps
//! 0–4 GiB with 2 MiB pages, enables PAE, long mode, paging and SSE, and calls
//! `fw_main(start_info_paddr: u32) -> !`, which the binary defines. Interrupts stay off for good.
#![allow(unsafe_code)]

/// Size of the only stack.
pub const STACK_SIZE: usize = 64 * 1024;
/// The byte the stub fills the stack with before any Rust code runs.
pub const STACK_PAINT: u8 = 0xA5;

core::arch::global_asm!(
    r#"
    .section .note.pvh, "a", @note
    .balign 4
    .long 4                     /* namesz: "Xen\0" */
    .long 8                     /* descsz */
    .long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad pvh_start32
    .balign 4

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    rdtsc
    movl %eax, boot_tsc
    movl %edx, boot_tsc + 4
    movl %ebx, boot_start_info

    /* zero .bss (page tables and stack live there) */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb

    /* paint the stack so its high-water mark can be measured */
    movl $boot_stack_bottom, %edi
    movl ${stack_size}, %ecx
    movl ${paint}, %eax
    rep stosb

    /* PML4[0] -> PDPT, PDPT[0..4] -> PD[0..4], 2048 PD entries of 2 MiB: 0..4 GiB identity */
    movl $boot_pdpt, %eax
    orl $3, %eax
    movl %eax, boot_pml4
    movl $boot_pd, %eax
    orl $3, %eax
    movl %eax, boot_pdpt
    addl $4096, %eax
    movl %eax, boot_pdpt + 8
    addl $4096, %eax
    movl %eax, boot_pdpt + 16
    addl $4096, %eax
    movl %eax, boot_pdpt + 24
    xorl %ecx, %ecx
1:
    movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax             /* present, writable, 2 MiB page */
    movl %eax, boot_pd(,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jb 1b

    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x620, %eax            /* PAE | OSFXSR | OSXMMEXCPT: core uses SSE2 */
    movl %eax, %cr4
    movl $0xC0000080, %ecx      /* EFER */
    rdmsr
    orl $0x100, %eax            /* LME */
    wrmsr
    movl %cr0, %eax
    andl $0xFFFFFFF3, %eax      /* clear EM and TS */
    orl $0x80000003, %eax       /* PG | MP | PE */
    movl %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $2f

    .code64
2:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq $boot_stack_top, %rsp
    xorl %ebp, %ebp
    movl boot_start_info(%rip), %edi
    call fw_main
3:
    hlt
    jmp 3b

    .section .rodata.boot, "a"
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF    /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF    /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .data.boot, "aw"
    .balign 8
    .global boot_tsc
boot_tsc:
    .quad 0
    .global boot_start_info
boot_start_info:
    .long 0

    .section .bss.boot, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4 * 4096
    .global boot_stack_bottom
boot_stack_bottom:
    .skip {stack_size}
    .global boot_stack_top
boot_stack_top:

    .text
    "#,
    stack_size = const STACK_SIZE,
    paint = const STACK_PAINT,
    options(att_syntax)
);

// SAFETY: these symbols are defined by the stub above with exactly these types (a `u64`
// and two labels whose addresses are all that is used).
unsafe extern "C" {
    static boot_tsc: u64;
    static boot_stack_bottom: u8;
    static boot_stack_top: u8;
}

/// The TSC value at the first instruction of the image.
pub fn entry_tsc() -> u64 {
    // SAFETY: `boot_tsc` is written once by the stub before any Rust code runs and never again.
    unsafe { core::ptr::read_volatile(&raw const boot_tsc) }
}

/// The stack's lowest and one-past-highest addresses.
pub fn stack_bounds() -> (usize, usize) {
    (
        (&raw const boot_stack_bottom) as usize,
        (&raw const boot_stack_top) as usize,
    )
}

/// `hvm_start_info.magic`.
const HVM_START_MAGIC: u32 = 0x336e_c578;
/// Longest command line read.
const CMDLINE_MAX: usize = 4096;

/// The kernel command line QEMU passed (`-append`), or `""` if there is none or it is not UTF-8.
///
/// `start_info` is the physical address the stub received in `ebx`.
pub fn cmdline(start_info: u32) -> &'static str {
    if start_info == 0 {
        return "";
    }
    let base = start_info as usize as *const u8;
    // SAFETY: QEMU's PVH loader put an `hvm_start_info` at `start_info` (in identity-mapped low
    // memory that nothing else uses); `magic` is at offset 0 and `cmdline_paddr` at offset 24.
    let (magic, cmdline_paddr) = unsafe {
        (
            core::ptr::read_unaligned(base.cast::<u32>()),
            core::ptr::read_unaligned(base.add(24).cast::<u64>()),
        )
    };
    if magic != HVM_START_MAGIC || cmdline_paddr == 0 || cmdline_paddr >= 1 << 32 {
        return "";
    }
    let ptr = usize::try_from(cmdline_paddr).unwrap_or(0) as *const u8;
    let mut len = 0;
    // SAFETY: the command line is a NUL-terminated string QEMU placed below 4 GiB; we read at most
    // CMDLINE_MAX bytes of it and nothing writes it afterwards, so a 'static borrow is sound.
    let bytes = unsafe {
        while len < CMDLINE_MAX && ptr.add(len).read() != 0 {
            len += 1;
        }
        core::slice::from_raw_parts(ptr, len)
    };
    core::str::from_utf8(bytes).unwrap_or("")
}
