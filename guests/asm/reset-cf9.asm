; reset-cf9: resets the machine through the PIIX/ICH reset control register: writes 0x06
; (SRST = hard reset, RCPU = reset now) to port 0xCF9, what the FADT's RESET_REG names and what
; Linux's reboot=pci does.
;
; Expected serial output: "resetting via 0xcf9\n". With --no-reboot tsvm then exits with
; status 0 ("the guest rebooted (--no-reboot: exiting)"); without it the machine restarts from
; the reset vector and the line appears again, forever.
; Failure: still running 2 s after the write: exit with v = 0x1f (status 63).

%include "common.inc"

RESET_CONTROL   equ 0xCF9
RC_HARD_RESET   equ 0x06            ; SRST | RCPU
TICKS_2S        equ 7159090

bits 16
org 0

start:
    REAL_MODE_SETUP
    mov si, msg
    call puts16
    mov dx, RESET_CONTROL
    mov al, RC_HARD_RESET
    out dx, al
    mov ecx, TICKS_2S
    call wait_ticks16
    EXIT 0x1f

DEFINE_WAIT_TICKS wait_ticks16

DEFINE_PUTS puts16, 16

msg: db "resetting via 0xcf9", 10, 0

RESET_VECTOR start
