; counter: prints 0, 1, 2, ... in decimal, one number per line, forever, one line every 20 ms.
; It stands for a guest that keeps talking on its console (the console and API tests use it).
;
; The delay is the timer interrupt, not a busy loop: it programs the PIC (vector base 8, only
; IRQ 0 unmasked) and PIT channel 0 (mode 2, 50 Hz), then sleeps in HLT between lines, so it costs
; the host almost nothing. Under KVM the PIC and PIT are the in-kernel ones (the default
; irqchip); KVM puts the BSP's LAPIC LINT0 in ExtINT mode at reset, so PIC interrupts arrive in
; real mode with no LAPIC programming.
;
; Expected serial output: "0\n1\n2\n..." until tsvm is stopped; it never enables the ACPI power
; button, so SIGTERM stops it at once (status 143).

%include "common.inc"

PIC1_CMD        equ 0x20
PIT_CH0         equ 0x40
PIT_MODE        equ 0x43
PIT_DIVISOR     equ 23864           ; 1193182 Hz / 50
IRQ0_VECTOR     equ 8

bits 16
org 0

start:
    REAL_MODE_SETUP                 ; interrupts off, stack at 0:STACK_TOP, DS = CS
    xor ax, ax
    mov fs, ax
    mov word [fs:IRQ0_VECTOR * 4], irq0
    mov word [fs:IRQ0_VECTOR * 4 + 2], 0xF000

    ; The two 8259s: vector bases 8 and 0x70, everything masked but IRQ 0.
    INIT_PICS IRQ0_VECTOR, 0x70, 0xfe, 0xff

    ; PIT channel 0: lobyte/hibyte, mode 2 (rate generator).
    mov al, 0x34
    out PIT_MODE, al
    mov ax, PIT_DIVISOR
    out PIT_CH0, al
    mov al, ah
    out PIT_CH0, al

    xor ebx, ebx                    ; the counter
.next:
    mov eax, ebx
    call print_dec
    inc ebx
    sti
    hlt                             ; until the next tick (sti's shadow covers the hlt)
    cli
    jmp .next

irq0:
    push ax
    mov al, 0x20                    ; non-specific EOI
    out PIC1_CMD, al
    pop ax
    iret

; print_dec: writes EAX in decimal and a newline. Clobbers EAX, ECX, EDX, SI.
print_dec:
    mov ecx, 10
    xor si, si
.div:
    xor edx, edx
    div ecx
    push dx                         ; one digit, least significant first
    inc si
    test eax, eax
    jnz .div
.digit:
    pop ax
    add al, '0'
    call putc
    dec si
    jnz .digit
    mov al, 10
    call putc
    ret

DEFINE_PUTC putc

RESET_VECTOR start
