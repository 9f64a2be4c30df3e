; smp: starts the application processors (APs) the way firmware does, and counts them.
;
; The bootstrap processor (BSP, vCPU 0):
;   1. reads the number of vCPUs from CMOS byte 0x5F (vCPUs - 1, as SeaBIOS reads it);
;   2. copies a real-mode AP trampoline to RAM at 0x8000, the page the STARTUP IPI's vector
;      (0x08) names: an AP starts there in real mode at CS:IP = 0800:0000;
;   3. enters 32-bit protected mode (flat) to reach the local APIC's MMIO at 0xFEE00000,
;      software-enables it (SVR) and sends the INIT-SIPI-SIPI sequence of Intel SDM vol. 3A
;      8.4.4.1 to all processors but itself: INIT, wait 10 ms, STARTUP, wait 200 us, STARTUP
;      (the waits use the ACPI PM timer at port 0x608, 3.579545 MHz, so they are real time on
;      any host);
;   4. waits (at most 5 s by the PM timer) until every AP has checked in, then 100 ms more to
;      see that none checks in twice;
;   5. prints "smp ok <n> cpus" where n = 1 + the number of APs that started.
; Each AP increments the shared counter at 0x9000 with `lock inc` and parks in `cli; hlt`.
; With one vCPU there are no APs and no IPIs.
;
; Expected serial output: "smp ok <N> cpus\n" for --cpus N; exit with v = 0x14 (status 41).
; Failures exit with their own code (and print nothing):
;   0x15 (status 43)  timed out: fewer APs than CMOS says checked in within 5 s
;   0x16 (status 45)  more check-ins than APs (an AP started twice, or a stray one)
;   0x17 (status 47)  the ICR's delivery-status bit never cleared after an IPI

%include "common.inc"

CMOS_INDEX      equ 0x70
CMOS_DATA       equ 0x71
CMOS_CPUS_M1    equ 0x5f            ; number of vCPUs minus one

TICKS_10MS      equ 35795
TICKS_200US     equ 716
TICKS_100MS     equ 357954
TICKS_5S        equ 17897725

AP_TRAMPOLINE   equ 0x8000          ; 4 KiB aligned, below 1 MiB
SIPI_VECTOR     equ AP_TRAMPOLINE >> 12
AP_COUNTER      equ 0x9000          ; dword: APs that have started

LAPIC           equ 0xFEE00000
LAPIC_SVR       equ LAPIC + 0x0F0   ; spurious interrupt vector register: bit 8 = APIC enabled
LAPIC_ICR_LO    equ LAPIC + 0x300
LAPIC_ICR_HI    equ LAPIC + 0x310
; ICR low: destination shorthand 11 (all excluding self, bits 18-19), level assert (bit 14),
; delivery mode INIT (101b) or STARTUP (110b) in bits 8-10; for STARTUP the vector is the page.
ICR_INIT        equ 0x000C4500
ICR_STARTUP     equ 0x000C4600 | SIPI_VECTOR
ICR_BUSY        equ 1 << 12         ; delivery status: send pending

bits 16
org 0

start:
    REAL_MODE_SETUP
    mov al, CMOS_CPUS_M1
    out CMOS_INDEX, al
    in al, CMOS_DATA
    movzx ebp, al                   ; EBP = APs expected (ENTER_PM32 leaves it alone)
    ENTER_PM32 pm32

bits 32
pm32:
    mov dword [AP_COUNTER], 0
    test ebp, ebp
    jz report                       ; one vCPU: nothing to start

    ; The trampoline is position-independent 16-bit code: copy it where the SIPI points.
    mov esi, BASE + ap_trampoline
    mov edi, AP_TRAMPOLINE
    mov ecx, ap_trampoline_end - ap_trampoline
    rep movsb

    mov dword [LAPIC_SVR], 0x1FF    ; APIC software-enabled, spurious vector 0xFF
    mov dword [LAPIC_ICR_HI], 0     ; destination unused with a shorthand
    mov eax, ICR_INIT
    call send_ipi
    mov ecx, TICKS_10MS
    call wait_ticks
    mov eax, ICR_STARTUP
    call send_ipi
    mov ecx, TICKS_200US
    call wait_ticks
    mov eax, ICR_STARTUP
    call send_ipi

    ; Wait for the APs, at most 5 s.
    mov dx, PM_TMR
    in eax, dx
    mov ebx, eax                    ; EBX = last timer value
    xor edi, edi                    ; EDI = ticks elapsed
.wait_aps:
    cmp [AP_COUNTER], ebp
    jae .arrived
    pause
    in eax, dx
    xchg eax, ebx
    neg eax
    add eax, ebx                    ; now - last
    and eax, 0xFFFFFF               ; modulo the 24-bit counter
    add edi, eax
    cmp edi, TICKS_5S
    jb .wait_aps
    EXIT 0x15

.arrived:
    ; A second STARTUP must not start an AP again: give a late one time to show up.
    mov ecx, TICKS_100MS
    call wait_ticks
    cmp [AP_COUNTER], ebp
    je report
    EXIT 0x16

report:
    mov esi, BASE + msg_ok
    call puts32
    mov eax, [AP_COUNTER]
    inc eax                         ; the BSP counts too
    call putdec32
    mov esi, BASE + msg_cpus
    call puts32
    EXIT 0x14

; send_ipi: writes EAX to ICR low (which sends the IPI) and waits for the delivery status to
; clear. Clobbers ECX.
send_ipi:
    mov [LAPIC_ICR_LO], eax
    mov ecx, 100000
.busy:
    test dword [LAPIC_ICR_LO], ICR_BUSY
    jz .sent
    pause
    dec ecx
    jnz .busy
    EXIT 0x17
.sent:
    ret

DEFINE_WAIT_TICKS wait_ticks

; putdec32: writes EAX in decimal. Clobbers EAX, EBX, ECX, EDX.
putdec32:
    mov ecx, 10
    xor ebx, ebx
.divide:
    xor edx, edx
    div ecx
    push edx                        ; digits come out least significant first
    inc ebx
    test eax, eax
    jnz .divide
.emit:
    pop eax
    add al, '0'
    call putc32
    dec ebx
    jnz .emit
    ret

DEFINE_PUTC putc32

DEFINE_PUTS puts32, 32

; The AP trampoline, run from AP_TRAMPOLINE at 0800:0000 in real mode. Only relative jumps
; and absolute data addresses, so it runs wherever it is copied.
bits 16
ap_trampoline:
    cli
    xor ax, ax
    mov ds, ax
    lock inc dword [AP_COUNTER]
.park:
    cli
    hlt
    jmp short .park
ap_trampoline_end:

msg_ok:   db "smp ok ", 0
msg_cpus: db " cpus", 10, 0

DEFINE_GDT

RESET_VECTOR start
