; irq: counts the interrupts it receives, for host-driven interrupt delivery tests
; (test/accel/kvm-irqfd.test.ts: MSIs through irqfd and KVM_SIGNAL_MSI, and INTx through the
; 8259 and the I/O APIC after the VMM replaced KVM's GSI routing table).
;
; It stays in real mode, where the interrupt handlers' IRET can be executed on a PVM host too
; (PVM runs guest ring-0 code through KVM's instruction emulator, whose IRET handles real mode
; only), and reaches the local APIC and the I/O APIC at 0xFExxxxxx through "unreal mode": FS is
; loaded with a flat 4 GiB descriptor in protected mode and keeps that limit back in real mode
; (the CPU, and KVM's emulator, keep a segment's cached limit when real mode reloads its base).
; Then it:
;   1. points interrupt vector table entries at handlers: 0x40-0x47 (MSIs), 0x23 (8259 IRQ 3),
;      0x51 (I/O APIC pin 17) and 0xFF (the LAPIC's spurious vector);
;   2. programs the 8259 pair (vector bases 0x20/0x28, everything masked but IRQ 3); KVM leaves
;      the BSP's LINT0 in ExtINT mode, so the 8259's output reaches the CPU;
;   3. software-enables its local APIC (SVR = 0x1FF);
;   4. points I/O APIC redirection entry 17 at vector 0x51 (fixed, physical, edge, destination
;      APIC ID 0, unmasked);
;   5. prints "irq guest ready\n", stores READY_MAGIC at STATE, and sleeps in HLT with
;      interrupts enabled, forever.
; Each handler increments its own dword counter in RAM (below) and ends the interrupt (LAPIC EOI,
; or a non-specific EOI to the 8259 for IRQ 3). The host reads the counters from guest memory,
; so counting costs the guest no exit at all.
;
; Under `tsvm run` nothing sends it interrupts: it prints the line and waits until SIGTERM
; (status 143).
;
; RAM layout (dwords):
;   STATE + 0x00          READY_MAGIC once set up
;   STATE + 0x04 + 4*i    interrupts on vector 0x40 + i, i = 0..7
;   STATE + 0x24          interrupts on vector 0x23 (8259 IRQ 3)
;   STATE + 0x28          interrupts on vector 0x51 (I/O APIC pin 17)
;   STATE + 0x2C          spurious interrupts (vector 0xFF)

%include "common.inc"

STATE           equ 0x6000
READY_MAGIC     equ 0x52454459      ; "YDER" in memory: ready
MSI_COUNTS      equ STATE + 0x04
PIC_COUNT       equ STATE + 0x24
IOAPIC_COUNT    equ STATE + 0x28
SPURIOUS_COUNT  equ STATE + 0x2C

MSI_VECTOR      equ 0x40
PIC_VECTOR_BASE equ 0x20
PIC_IRQ         equ 3
IOAPIC_PIN      equ 17
IOAPIC_VECTOR   equ 0x51
SPURIOUS_VECTOR equ 0xFF

LAPIC           equ 0xFEE00000
LAPIC_EOI       equ LAPIC + 0x0B0
LAPIC_SVR       equ LAPIC + 0x0F0
IOAPIC          equ 0xFEC00000
IOAPIC_SEL      equ IOAPIC + 0x00
IOAPIC_WIN      equ IOAPIC + 0x10

PIC1_CMD        equ 0x20

; SET_VECTOR v, handler: interrupt vector table entry v -> F000:handler (FS base 0).
%macro SET_VECTOR 2
    mov word [fs:(%1) * 4], %2
    mov word [fs:(%1) * 4 + 2], 0xF000
%endmacro

bits 16
org 0

start:
    REAL_MODE_SETUP                 ; interrupts off, stack at 0:STACK_TOP, DS = ES = CS
    ; Unreal mode: load FS from the flat data descriptor in protected mode, then go back.
    o32 lgdt [cs:gdt_desc]
    mov eax, cr0
    or al, 1
    mov cr0, eax
    mov bx, SEL_DATA32
    mov fs, bx
    and al, 0xFE
    mov cr0, eax
    xor bx, bx
    mov fs, bx                      ; base 0, the 4 GiB limit stays

    ; Counters zeroed.
    xor eax, eax
    mov ecx, 0x30 / 4
    mov edi, STATE
.zero:
    mov [fs:edi], eax
    add edi, 4
    loop .zero

%assign i 0
%rep 8
    SET_VECTOR MSI_VECTOR + i, msi_handler_ %+ i
%assign i i + 1
%endrep
    SET_VECTOR PIC_VECTOR_BASE + PIC_IRQ, pic_handler
    SET_VECTOR IOAPIC_VECTOR, ioapic_handler
    SET_VECTOR SPURIOUS_VECTOR, spurious_handler

    ; The two 8259s: everything masked but IRQ 3.
    INIT_PICS PIC_VECTOR_BASE, PIC_VECTOR_BASE + 8, ~(1 << PIC_IRQ) & 0xff, 0xff

    mov edi, LAPIC_SVR
    mov dword [fs:edi], 0x100 | SPURIOUS_VECTOR

    ; I/O APIC redirection entry for the pin: high dword (destination) first, then the low
    ; dword, which unmasks it.
    mov edi, IOAPIC_SEL
    mov esi, IOAPIC_WIN
    mov dword [fs:edi], 0x10 + 2 * IOAPIC_PIN + 1
    mov dword [fs:esi], 0
    mov dword [fs:edi], 0x10 + 2 * IOAPIC_PIN
    mov dword [fs:esi], IOAPIC_VECTOR

    mov si, msg_ready
    call puts16
    mov dword [fs:STATE], READY_MAGIC
.idle:
    sti
    hlt
    jmp .idle

; Handlers: count, end the interrupt, return. They touch only memory (through FS).
%assign i 0
%rep 8
msi_handler_ %+ i:
    inc dword [fs:MSI_COUNTS + 4 * i]
    a32 mov dword [fs:dword LAPIC_EOI], 0
    iret
%assign i i + 1
%endrep

pic_handler:
    push ax
    inc dword [fs:PIC_COUNT]
    mov al, 0x20                    ; non-specific EOI
    out PIC1_CMD, al
    pop ax
    iret

ioapic_handler:
    inc dword [fs:IOAPIC_COUNT]
    a32 mov dword [fs:dword LAPIC_EOI], 0
    iret

spurious_handler:
    inc dword [fs:SPURIOUS_COUNT]   ; no EOI for the spurious vector (SDM vol. 3A 11.9)
    iret

DEFINE_PUTS puts16, 16

msg_ready: db "irq guest ready", 10, 0

DEFINE_GDT

RESET_VECTOR start
