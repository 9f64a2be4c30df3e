; hlt: prints "halting", then `cli; hlt`. With interrupts disabled and nothing pending the CPU
; can never leave that HLT (short of NMI/INIT), so the VMM treats it as the end of the guest.
; Should execution continue anyway, the guest exits with v = 0x7e (status 0xfd = 253), which
; tells a test that the VMM resumed a halted CPU it should have stopped.
;
; Expected serial output: "halting\n"; then the VMM reports a halt (QEMU just sits there).

%include "common.inc"

bits 16
org 0

start:
    REAL_MODE_SETUP
    mov si, msg
    call puts16
    cli
    hlt
    EXIT 0x7e                       ; not reached

DEFINE_PUTS puts16, 16

msg: db "halting", 10, 0

RESET_VECTOR start
