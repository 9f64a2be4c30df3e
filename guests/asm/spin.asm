; spin: prints one line, then loops forever with interrupts disabled. It never enables the ACPI
; power button (PWRBTN_EN), so it stands for a guest with no ACPI driver: on SIGTERM/SIGINT tsvm
; cannot ask it to shut down and stops it at once (status 143/130), whatever --grace says.
;
; Expected serial output: "spinning\n"; then it runs until tsvm is signalled.

%include "common.inc"

bits 16
org 0

start:
    REAL_MODE_SETUP                 ; includes cli
    mov si, msg
    call puts16
.spin:
    jmp .spin

DEFINE_PUTS puts16, 16

msg: db "spinning", 10, 0

RESET_VECTOR start
