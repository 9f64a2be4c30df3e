; mmio: memory-mapped I/O against pc-testdev's 64 KiB scratch window at 0xff000000.
; In 32-bit protected mode (flat 4 GiB segments): writes and reads of 1, 2 and 4 bytes,
; narrower reads of wider writes, and a rep movsb into the window. Then in long mode: 8-byte
; reads and writes (mov rax, [addr]). Prints "mmio ok" and exits with v = 0x13 (status 39);
; a failed check prints "mmio FAIL" and exits with its code:
;   0x71 byte    0x72 word    0x73 dword
;   0x74 byte and word reads inside a dword written before (little-endian lanes)
;   0x75 rep movsb from ROM into the window, read back as dwords
;   0x76 qword read of two dwords written before    0x77 qword write, dword read-back
;
; Expected serial output: "mmio ok\n"; exit status 39.

%include "common.inc"

M equ TESTDEV_MMIO

bits 16
org 0

start:
    REAL_MODE_SETUP
    ENTER_PM32 pm32

bits 32
pm32:
    mov bl, 0x71
    mov byte [M + 0x10], 0x5A
    cmp byte [M + 0x10], 0x5A
    jne fail32

    mov bl, 0x72
    mov word [M + 0x20], 0xBEEF
    cmp word [M + 0x20], 0xBEEF
    jne fail32

    mov bl, 0x73
    mov dword [M + 0x30], 0xDEADBEEF
    mov eax, [M + 0x30]
    cmp eax, 0xDEADBEEF
    jne fail32

    mov bl, 0x74
    mov dword [M + 0x40], 0x11223344
    cmp byte [M + 0x41], 0x33
    jne fail32
    cmp word [M + 0x42], 0x1122
    jne fail32

    mov bl, 0x75
    mov esi, BASE + pattern
    mov edi, M + 0x100
    mov ecx, 8
    rep movsb
    cmp dword [M + 0x100], 0x03020100
    jne fail32
    cmp dword [M + 0x104], 0x07060504
    jne fail32

    ENTER_LONG lm64

bits 64
lm64:
    mov bl, 0x76
    mov rdx, M
    mov dword [rdx + 0x200], 0x89ABCDEF
    mov dword [rdx + 0x204], 0x01234567
    mov rax, [rdx + 0x200]
    mov rcx, 0x0123456789ABCDEF
    cmp rax, rcx
    jne fail64

    mov bl, 0x77
    mov rax, 0xFEDCBA9876543210
    mov [rdx + 0x300], rax
    cmp dword [rdx + 0x300], 0x76543210
    jne fail64
    cmp dword [rdx + 0x304], 0xFEDCBA98
    jne fail64

    mov rsi, BASE + msg_ok
    call puts64
    EXIT 0x13

bits 32
fail32:                             ; BL = the failed check's exit code
    mov esi, BASE + msg_fail
    call puts32
    jmp fail_exit

bits 64
fail64:
    mov rsi, BASE + msg_fail
    call puts64
fail_exit:                          ; (same bytes in 32- and 64-bit mode)
    mov al, bl
    out DEBUG_EXIT, al
.stop:
    cli
    hlt
    jmp .stop

DEFINE_PUTS puts32, 32
DEFINE_PUTS puts64, 64
DEFINE_GDT

pattern:  db 0, 1, 2, 3, 4, 5, 6, 7
msg_ok:   db "mmio ok", 10, 0
msg_fail: db "mmio FAIL", 10, 0

RESET_VECTOR start
