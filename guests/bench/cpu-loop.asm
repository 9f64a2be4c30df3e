; cpu-loop: the fixed integer workload of `npm run bench:cpu`. From the reset vector it enters
; long mode (common.inc), then runs ITERATIONS times a 10-instruction loop of ALU, load/store,
; shift/rotate and branch instructions, and exits through isa-debug-exit with a value folded from
; the loop's registers (the benchmark checks that every run of an image agrees on it).
; The iteration count is a qword in the image that the benchmark patches (found by its marker
; value), so one assembly serves every count; 10 * ITERATIONS guest instructions run in the loop.

%include "common.inc"

bits 16
org 0

start:
    REAL_MODE_SETUP
    o32 lgdt [cs:gdt_desc]
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    jmp dword SEL_CODE32:(BASE + pm32)

bits 32
pm32:
    mov ax, SEL_DATA32
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, STACK_TOP
    ENTER_LONG lm64

bits 64
lm64:
    mov rcx, [BASE + iterations]
    mov rsi, 0x6000                 ; scratch RAM
    xor eax, eax
    xor edx, edx
    mov rbx, 0x9E3779B97F4A7C15
    test rcx, rcx
    jz .done
.loop:
    add rax, rbx
    xor rdx, rax
    mov [rsi], rax
    rol rdx, 7
    add rdx, [rsi]
    mov r8, rdx
    shr r8, 3
    sub rax, r8
    dec rcx
    jnz .loop
.done:
    ; the loop's result, folded to 7 bits, is the isa-debug-exit value (status 2v + 1), so the
    ; benchmark can check that every VMM and CPU mode computed the same thing
    xor rax, rdx
    EXIT_FOLDED

DEFINE_GDT

align 8
iterations: dq 0x1122334455667788   ; patched by bench/cpu.ts

RESET_VECTOR start
