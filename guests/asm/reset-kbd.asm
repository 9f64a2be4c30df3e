; reset-kbd: resets the machine the classic AT way: waits for the i8042's input buffer to be
; empty (status port 0x64, bit 1), then writes command 0xFE (pulse output port bit 0, the CPU
; reset line) to port 0x64.
;
; Expected serial output: "resetting via i8042\n". With --no-reboot tsvm then exits with
; status 0 ("the guest rebooted (--no-reboot: exiting)"); without it the machine restarts from
; the reset vector and the line appears again, forever.
; Failure: still running 2 s after the reset command: exit with v = 0x1f (status 63).

%include "common.inc"

I8042_STATUS    equ 0x64
I8042_COMMAND   equ 0x64
I8042_IBF       equ 1 << 1          ; input buffer full: the controller has not taken the last byte
I8042_PULSE_RESET equ 0xFE
TICKS_2S        equ 7159090

bits 16
org 0

start:
    REAL_MODE_SETUP
    mov si, msg
    call puts16
    mov cx, 0xFFFF                  ; a bounded wait: go ahead anyway if IBF stays set
.ibf:
    in al, I8042_STATUS
    test al, I8042_IBF
    jz .send
    loop .ibf
.send:
    mov al, I8042_PULSE_RESET
    out I8042_COMMAND, al
    mov ecx, TICKS_2S
    call wait_ticks16
    EXIT 0x1f

DEFINE_WAIT_TICKS wait_ticks16

DEFINE_PUTS puts16, 16

msg: db "resetting via i8042", 10, 0

RESET_VECTOR start
