; triple-fault: goes to 32-bit protected mode, loads an empty IDT (limit 0) and executes ud2.
; The #UD cannot be delivered (vector 6 is beyond the IDT limit: #GP), neither can the #GP
; (#DF), nor the #DF: triple fault, the CPU shuts down. The VMM reports a shutdown (KVM:
; KVM_EXIT_SHUTDOWN); QEMU resets the machine, or exits with status 0 under -no-reboot.
; Should execution continue after ud2, the guest exits with v = 0x7d (status 0xfb = 251).
;
; Expected serial output: "triple fault next\n"; then shutdown.

%include "common.inc"

bits 16
org 0

start:
    REAL_MODE_SETUP
    ENTER_PM32 pm32

bits 32
pm32:
    mov esi, BASE + msg
    call puts32
    lidt [BASE + empty_idt]
    ud2
    EXIT 0x7d                       ; not reached

DEFINE_PUTS puts32, 32
DEFINE_GDT

empty_idt:
    dw 0                            ; limit 0: no vector fits
    dd 0

msg: db "triple fault next", 10, 0

RESET_VECTOR start
