; hello: the smallest guest. Stays in real mode, prints one line on the serial port and exits
; through isa-debug-exit with v = 0x10 (VMM exit status 0x21 = 33).
;
; Expected serial output: "Hello from real mode\n"; exit status 33.

%include "common.inc"

bits 16
org 0

start:
    REAL_MODE_SETUP
    mov si, msg
    call puts16
    EXIT 0x10

DEFINE_PUTS puts16, 16

msg: db "Hello from real mode", 10, 0

RESET_VECTOR start
