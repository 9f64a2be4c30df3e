; modes: walks the x86 operating modes and prints a line in each:
;   real mode -> 16-bit protected mode (code segment based at 0xF0000) -> 32-bit protected mode
;   (flat) -> long mode (PAE page tables, EFER.LME, CR0.PG, far jump to a 64-bit code segment).
; In long mode it checks some 64-bit arithmetic; on success it exits with v = 0x11 (status 35).
; A failed check prints "long64 FAIL" and exits with its own code:
;   0x51 add with carry across bit 31, 0x52 64x64 -> 128-bit mul, 0x53 shl/sar by large counts,
;   0x54 128/64-bit div, 0x55 32-bit writes zero-extend into the 64-bit register.
;
; Expected serial output: "real\nprotected16\nprotected32\nlong64\nmodes ok\n"; exit status 35.

%include "common.inc"

bits 16
org 0

start:
    REAL_MODE_SETUP
    mov si, msg_real
    call puts16

    ; Real mode -> 16-bit protected mode.
    o32 lgdt [cs:gdt_desc]
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    jmp SEL_CODE16:pm16             ; CS base 0xF0000: offsets stay as in real mode
pm16:
    mov ax, SEL_DATA16              ; DS base 0xF0000 too, so DS:SI still finds the strings
    mov ds, ax
    mov ax, SEL_DATA32
    mov ss, ax
    mov esp, STACK_TOP
    mov si, msg_pm16
    call puts16
    ; 16-bit protected mode -> 32-bit protected mode (32-bit offset in the far jump).
    jmp dword SEL_CODE32:(BASE + pm32)

bits 32
pm32:
    mov ax, SEL_DATA32
    mov ds, ax
    mov es, ax
    mov esi, BASE + msg_pm32
    call puts32
    ENTER_LONG lm64

bits 64
lm64:
    mov rsi, BASE + msg_lm64
    call puts64

    ; 0x123456789ABCDEF0 + 0x0FEDCBA987654321 = 0x2222222222222211 (carry out of the low half)
    mov rax, 0x123456789ABCDEF0
    mov rbx, 0x0FEDCBA987654321
    add rax, rbx
    mov rcx, 0x2222222222222211
    cmp rax, rcx
    mov bl, 0x51
    jne fail

    ; 0xFFFFFFFFFFFFFFFF * 3 = 2:0xFFFFFFFFFFFFFFFD
    mov rax, -1
    mov rcx, 3
    mul rcx
    cmp rdx, 2
    mov bl, 0x52
    jne fail
    mov rcx, 0xFFFFFFFFFFFFFFFD
    cmp rax, rcx
    jne fail

    ; 1 << 63 = 0x8000000000000000; arithmetic >> 62 = -2
    mov eax, 1
    shl rax, 63
    mov rcx, 0x8000000000000000
    cmp rax, rcx
    mov bl, 0x53
    jne fail
    sar rax, 62
    cmp rax, -2
    jne fail

    ; 0x1_0000000000000005 / 0x100000000 = 0x100000000, remainder 5
    mov edx, 1
    mov eax, 5
    mov rcx, 0x100000000
    div rcx
    mov rbx, 0x100000000
    cmp rax, rbx
    mov bl, 0x54
    jne fail
    cmp rdx, 5
    jne fail

    ; A 32-bit write clears bits 63:32.
    mov rax, -1
    mov eax, 7
    cmp rax, 7
    mov bl, 0x55
    jne fail

    mov rsi, BASE + msg_ok
    call puts64
    EXIT 0x11

fail:                               ; BL = the failed check's exit code
    mov rsi, BASE + msg_fail
    call puts64
    mov al, bl
    out DEBUG_EXIT, al
.stop:
    cli
    hlt
    jmp .stop

DEFINE_PUTS puts16, 16
DEFINE_PUTS puts32, 32
DEFINE_PUTS puts64, 64
DEFINE_GDT

msg_real: db "real", 10, 0
msg_pm16: db "protected16", 10, 0
msg_pm32: db "protected32", 10, 0
msg_lm64: db "long64", 10, 0
msg_ok:   db "modes ok", 10, 0
msg_fail: db "long64 FAIL", 10, 0

RESET_VECTOR start
