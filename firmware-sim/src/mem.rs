//! `memcpy`, `memmove`, `memset`, `memcmp`, `bcmp` and `strlen`: libc is not linked and the
//! precompiled `compiler_builtins` does not export them on this target. Written in assembly so
//! LLVM cannot turn a loop back into a call to itself.
#![allow(unsafe_code)]

core::arch::global_asm!(
    r#"
    .section .text.memfns, "ax"
    .global memcpy
memcpy:
    movq %rdi, %rax
    movq %rdx, %rcx
    rep movsb
    ret

    .global memmove
memmove:
    movq %rdi, %rax
    movq %rdx, %rcx
    cmpq %rsi, %rdi
    jbe 1f
    leaq -1(%rsi,%rdx), %rsi
    leaq -1(%rdi,%rdx), %rdi
    std
    rep movsb
    cld
    ret
1:
    rep movsb
    ret

    .global memset
memset:
    movq %rdi, %r9
    movl %esi, %eax
    movq %rdx, %rcx
    rep stosb
    movq %r9, %rax
    ret

    .global memcmp
    .global bcmp
memcmp:
bcmp:
    xorl %eax, %eax
    testq %rdx, %rdx
    jz 3f
2:
    movzbl (%rdi), %eax
    movzbl (%rsi), %ecx
    subl %ecx, %eax
    jnz 3f
    incq %rdi
    incq %rsi
    decq %rdx
    jnz 2b
3:
    ret

    .global strlen
strlen:
    movq %rdi, %rax
4:
    cmpb $0, (%rax)
    je 5f
    incq %rax
    jmp 4b
5:
    subq %rdi, %rax
    ret
    .text
    "#,
    options(att_syntax)
);
