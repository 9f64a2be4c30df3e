; constructs: the loops of `npm run bench:constructs`, one per code shape a software CPU handles
; differently (a tight loop, memory, a branch inside a loop, calls and returns near and far, an
; indirect call, jumps between pages, a bignum inner loop called for a few limbs, a REP MOVSB
; memcpy). The benchmark
; assembles this file once per case (nasm -DCASE_<name>), runs each image under tsvm and QEMU TCG
; as firmware, and compares their time per iteration. Like cpu-loop.asm, the iteration count is a
; qword the benchmark patches (found by its marker value), and the loop's registers are folded
; into the isa-debug-exit value, which both VMMs must agree on.

%include "common.inc"

bits 16
org 0

start:
    BOOT_TO_LONG lm64

bits 64
lm64:
    mov rcx, [BASE + iterations]
    mov rsp, 0x80000
    xor eax, eax
    xor ebx, ebx
    xor edx, edx
    mov rsi, 0x10000                ; scratch RAM
    mov rdi, 0x11000
    test rcx, rcx
    jz done

%ifdef CASE_tiny
top:
    add rax, 1
    dec rcx
    jnz top
%endif

%ifdef CASE_memory
top:
    mov rax, [rsi]
    add rax, rcx
    mov [rsi + 8], rax
    xor rdx, rax
    shr rdx, 3
    add rbx, rdx
    dec rcx
    jnz top
%endif

%ifdef CASE_ifthen
; half the passes skip the then-part: a forward branch inside the loop
top:
    test cl, 1
    jz .skip
    add rax, rcx
    xor rax, 5
.skip:
    dec rcx
    jnz top
%endif

%ifdef CASE_calls
; a call to and a return from a function on the same page
top:
    call near_fn
    dec rcx
    jnz top
%endif

%ifdef CASE_farcall
; the function is on another page
top:
    call far_fn
    dec rcx
    jnz top
%endif

%ifdef CASE_indirect
; an indirect call (through a register), as for function pointers
    lea r8, [rel near_fn]
top:
    call r8
    dec rcx
    jnz top
%endif

%ifdef CASE_dispatch
; two jumps to another page and back per pass
top:
    add rax, 1
    jmp far_jump
back:
    sub rcx, 1
    jnz top
%endif

%ifdef CASE_bignum
; Linux's mpihelp_submul_1 (lib/crypto/mpi, 64-bit limbs multiplied in 32-bit halves, as the
; Debian kernel is built) called for 8 limbs per pass: the RSA arithmetic of its boot-time
; certificate checks and self-tests, a short loop entered often
    mov r15, rcx
    mov rdi, 0x10000
    mov rcx, 512
    mov rax, 0x9E3779B97F4A7C15
.fill:
    mov [rdi], rax
    rol rax, 13
    add rdi, 8
    dec rcx
    jnz .fill
top:
    mov rdi, 0x10000
    mov rsi, 0x11000
    mov edx, 8
    mov rcx, r15
    call submul
    add rbx, rax
    dec r15
    jnz top
%endif

%ifdef CASE_memcpy
; Linux's memcpy where CPUID reports ERMS/FSRM (memcpy_erms: one REP MOVSB) copying 64 bytes per
; pass, as its kernel copies small structures
    mov r15, rcx
top:
    mov rdi, 0x11000
    mov rsi, 0x10000
    mov edx, 64
    mov [rsi], r15
    call memcpy_erms
    add rbx, [rdi - 64]
    dec r15
    jnz top
%endif

done:
    xor rax, rbx
    xor rax, rdx
    EXIT_FOLDED

near_fn:
    add rax, rcx
    ret

memcpy_erms:                        ; (rdi dest, rsi src, rdx bytes) -> rax dest
    mov rax, rdi
    mov rcx, rdx
    rep movsb
    ret

submul:                             ; (rdi res, rsi s1, edx size, rcx s2 limb) -> rax borrow
    push r14
    push r13
    push r12
    push rbp
    push rbx
    neg edx
    mov r10, rcx
    mov r11, rdi
    movsxd rax, edx
    shr r10, 32
    mov r9d, ecx
    mov r8, rax
    mov r12, rax
    mov rbp, 0x100000000
    mov rbx, rsi
    xor esi, esi
    jmp .l2
.l1:
    movsxd rax, r8d
.l2:
    sub rax, r12
    mov rcx, [rbx + rax*8]
    lea rdi, [rax*8]
    mov rdx, rcx
    mov ecx, ecx
    shr rdx, 32
    mov rax, rcx
    imul rax, r9
    mov r13, rdx
    imul r13, r9
    imul rcx, r10
    imul rdx, r10
    mov r14, rax
    mov eax, eax
    shr r14, 32
    add rcx, r13
    add rcx, r14
    mov r14, rdx
    add rdx, rbp
    cmp rcx, r13
    mov r13, rcx
    cmovae rdx, r14
    add rax, rsi
    shl r13, 32
    add rax, r13
    cmp rax, rsi
    setb sil
    add rdi, r11
    shr rcx, 32
    mov r13, [rdi]
    movzx esi, sil
    sub r13, rax
    adc rsi, rcx
    mov [rdi], r13
    add rsi, rdx
    add r8d, 1
    jne .l1
    pop rbx
    mov rax, rsi
    pop rbp
    pop r12
    pop r13
    pop r14
    ret

align 4096
far_fn:
    add rax, rcx
    ret
%ifdef CASE_dispatch
far_jump:
    add rax, 2
    jmp back
%endif

DEFINE_GDT

align 8
iterations: dq 0x1122334455667788   ; patched by bench/soft-constructs.ts

RESET_VECTOR start
