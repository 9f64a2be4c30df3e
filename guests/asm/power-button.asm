; power-button: a guest that listens to the ACPI power button, as an OS's ACPI driver does
; (without interrupts: it polls). It enables PWRBTN_EN in PM1a_EN (port 0x602), says it is
; waiting, then polls PM1a_STS (port 0x600) until PWRBTN_STS (bit 8) is set: tsvm sets it when
; it receives SIGTERM. It clears the status bit (write 1 to clear), checks that it cleared, says
; so and powers off through PM1a_CNT (port 0x604): SLP_TYP = 5 (our DSDT's \_S5) with SLP_EN.
;
; Expected serial output: "waiting for the power button\n" and, after SIGTERM,
; "power button pressed\n"; then tsvm exits with status 0 ("the guest powered off").
; Failures exit with their own code:
;   0x1d (status 59)  PWRBTN_STS did not clear when 1 was written to it
;   0x1e (status 61)  still running 2 s after the S5 request

%include "common.inc"

PM1_STS         equ 0x600
PM1_EN          equ 0x602
PM1_CNT         equ 0x604
PWRBTN          equ 1 << 8          ; PWRBTN_STS in PM1_STS, PWRBTN_EN in PM1_EN
SLP_TYP_MASK    equ 7 << 10
SLP_TYP_S5      equ 5 << 10
SLP_EN          equ 1 << 13
TICKS_2S        equ 7159090

bits 16
org 0

start:
    REAL_MODE_SETUP
    mov dx, PM1_STS
    mov ax, PWRBTN
    out dx, ax                      ; forget a press from before we listened
    mov dx, PM1_EN
    in ax, dx
    or ax, PWRBTN
    out dx, ax
    mov si, msg_waiting
    call puts16

    mov dx, PM1_STS
.poll:
    in ax, dx
    test ax, PWRBTN
    jz .poll

    mov ax, PWRBTN
    out dx, ax                      ; write 1 to clear
    in ax, dx
    test ax, PWRBTN
    jz .cleared
    EXIT 0x1d
.cleared:
    mov si, msg_pressed
    call puts16

    mov dx, PM1_CNT
    in ax, dx
    and ax, ~(SLP_TYP_MASK | SLP_EN) & 0xFFFF
    or ax, SLP_TYP_S5 | SLP_EN
    out dx, ax                      ; S5: the machine is off
    mov ecx, TICKS_2S
    call wait_ticks16
    EXIT 0x1e

DEFINE_WAIT_TICKS wait_ticks16

DEFINE_PUTS puts16, 16

msg_waiting: db "waiting for the power button", 10, 0
msg_pressed: db "power button pressed", 10, 0

RESET_VECTOR start
