; The differential oracle's guest (see test/oracle/README.md). A multiboot v1 image (a.out kludge,
; loaded at IMAGE_BASE, entered in 32-bit protected mode) that runs many small ring-3 test
; snippets, one after the other, and leaves every snippet's outcome in a result table in RAM,
; where the host reads it after the guest has written EXIT_DONE to isa-debug-exit.
;
; The same image runs under `--accel kvm` and `--accel soft`; the host compares the tables.
;
; Three files are generated per run and included below:
;   layout.inc  the addresses and offsets of test/oracle/layout.ts
;   cases.inc   the snippets (one global label per case, a local label per instruction)
;   boundaries.inc  where each instruction starts (read by the host, then dropped)
; image.ts fills the system tables (GDT, IDT, TSS, page tables), the control page's inputs, the
; case table and the pool after nasm has run; this file only reserves room for them.
;
; Where the time goes: under PVM (this project's KVM) ring-0 code is emulated at ~1M
; instructions/s while ring-3 code runs natively. So the per-case loop runs entirely in ring 3:
; a snippet ends with a plain `jmp case_end` and the ring-3 epilogue saves the registers with
; RIP-relative stores (no ring transition, no syscall). Only an exception enters ring 0, and its
; handler is ~40 instructions that copy the iret frame and go back to ring 3.

%include "layout.inc"

MB_MAGIC    equ 0x1BADB002
MB_FLAGS    equ 1 << 16                 ; a.out kludge: load addresses are in the header

bits 32
org IMAGE_BASE

; ---------------------------------------------------------------------------------------------
; Multiboot header (MB 3.1) at file offset 0, then the oracle header that image.ts reads.
mb_header:
    dd MB_MAGIC
    dd MB_FLAGS
    dd -(MB_MAGIC + MB_FLAGS)
    dd mb_header                        ; header_addr
    dd IMAGE_BASE                       ; load_addr
    dd 0                                ; load_end_addr: the whole file
    dd 0                                ; bss_end_addr: none
    dd entry32                          ; entry_addr

align 16
oracle_header:                          ; file offset 0x20 (image.ts: HEADER_OFFSET)
    dd 'ORCL', 1                        ; magic, version
    dq stubs                            ; exception stubs, 16 bytes apart, vectors 0-31
    dq done_handler                     ; all cases ran (the driver's final UD2)
    dq user_entry                       ; where ring 3 starts
    dq snippets_start                   ; [snippets_start, snippets_end): the snippets
    dq snippets_end
    dq boundary_table                   ; dd per instruction boundary, see cases.inc
    dq image_end                        ; end of what nasm produced (the table is dropped)
    dq user_store                       ; for reports (harness code addresses)
    dq case_end

; ---------------------------------------------------------------------------------------------
; Boot: 32-bit protected mode, paging off (MB 3.2) -> long mode, ring 0 -> ring 3.
entry32:
    cli
    lgdt [gdt_desc]
    mov eax, 0x20                       ; CR4.PAE
    mov cr4, eax
    mov eax, PML4_ADDR
    mov cr3, eax
    mov ecx, 0xC0000080                 ; IA32_EFER
    rdmsr
    or eax, (1 << 8) | (1 << 11)        ; LME, NXE
    wrmsr
    mov eax, 0x80010033                 ; PG, WP, NE, ET, MP, PE
    mov cr0, eax
    jmp SEL_KCODE:entry64

bits 64
entry64:
    mov ax, SEL_KDATA
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, KSTACK_TOP
    lidt [idt_desc]
    mov ax, SEL_TSS
    ltr ax
    ; iretq into ring 3 at user_entry on the harness stack, RFLAGS = 2 (IF=0, IOPL=0)
    push SEL_UDATA
    push CTL_HSTACKTOP
    push 0x202
    push SEL_UCODE
    push user_entry
    iretq

align 8
gdt_desc:
    dw 0x2f                             ; 6 descriptors (image.ts writes them at GDT_ADDR)
    dq GDT_ADDR
align 8
idt_desc:
    dw 256 * 16 - 1
    dq IDT_ADDR

; ---------------------------------------------------------------------------------------------
; Exception stubs: 16 bytes each, vector v at stubs + 16 * v. They push a zero error code for the
; vectors that have none, then the vector, and join fault_common.
%macro STUB 1
align 16
%if (%1 == 8) || (%1 >= 10 && %1 <= 14) || (%1 == 17) || (%1 == 21) || (%1 == 29) || (%1 == 30)
    push %1
%else
    push 0
    push %1
%endif
    jmp fault_common
%endmacro

align 16
stubs:
%assign v 0
%rep 32
    STUB v
%assign v v + 1
%endrep

; The iret frame on the kernel stack (TSS.RSP0): [rsp] vector, +8 error code, +16 RIP, +24 CS,
; +32 RFLAGS, +40 RSP, +48 SS. Save the interrupted registers and the exception into the scratch
; header, then iretq to ring 3 at user_store with the harness stack.
fault_common:
    mov [CTL_SCRATCH + 0 * 8], rax
    mov [CTL_SCRATCH + 1 * 8], rcx
    mov [CTL_SCRATCH + 2 * 8], rdx
    mov [CTL_SCRATCH + 3 * 8], rbx
    mov [CTL_SCRATCH + 5 * 8], rbp
    mov [CTL_SCRATCH + 6 * 8], rsi
    mov [CTL_SCRATCH + 7 * 8], rdi
    mov [CTL_SCRATCH + 8 * 8], r8
    mov [CTL_SCRATCH + 9 * 8], r9
    mov [CTL_SCRATCH + 10 * 8], r10
    mov [CTL_SCRATCH + 11 * 8], r11
    mov [CTL_SCRATCH + 12 * 8], r12
    mov [CTL_SCRATCH + 13 * 8], r13
    mov [CTL_SCRATCH + 14 * 8], r14
    mov [CTL_SCRATCH + 15 * 8], r15
    pop rax
    mov [CTL_SCRATCH + RES_VECTOR], rax
    pop rax
    mov [CTL_SCRATCH + RES_ERROR], rax
    mov rax, [rsp]                      ; RIP
    mov [CTL_SCRATCH + RES_RIP], rax
    mov rcx, [rsp + 16]
    mov [CTL_SCRATCH + RES_RFLAGS], rcx
    mov rcx, [rsp + 24]
    mov [CTL_SCRATCH + 4 * 8], rcx
    mov rcx, cr2
    mov [CTL_SCRATCH + RES_CR2], rcx
    inc qword [CTL_FAULTS]
    cmp rax, user_done                  ; the driver's UD2 after the last case
    je done_handler
    test byte [rsp + 8], 3              ; from ring 0: the harness is broken
    jz panic
    cmp rax, [CTL_SNIPSTART]            ; in the driver (USER_CODE up to the snippets): the
    jae .case_fault                     ; harness is broken. Anywhere else (a snippet, or where
    cmp rax, USER_CODE                  ; a snippet jumped to) it is the case's exception.
    jae panic
.case_fault:
    mov qword [rsp], user_store
    mov qword [rsp + 16], 0x202
    mov qword [rsp + 24], CTL_HSTACKTOP
    iretq

; The harness itself faulted: copy the scratch header (it holds the exception and the registers)
; to PANIC_ADDR and stop. The host reports it with the case index from the control page.
panic:
    cld
    mov esi, CTL_SCRATCH
    mov edi, PANIC_ADDR
    mov ecx, HEADER_QWORDS
    rep movsq
    mov al, EXIT_PANIC
    out 0xf4, al
.stop:
    hlt
    jmp .stop

; Reached from fault_common when the driver's final UD2 faults: every case ran.
done_handler:
    mov al, EXIT_DONE
    out 0xf4, al
.stop:
    hlt
    jmp .stop

    times KERNEL_END - IMAGE_BASE - ($ - $$) db 0

; ---------------------------------------------------------------------------------------------
; The control page (user RW): a label here, so that ring-3 code reaches it RIP-relative. Its
; inputs (case count, table addresses) are filled in by image.ts. Then the other test pages,
; and the user part (ring 3, read-only) at USER_CODE.
    times CONTROL_ADDR - IMAGE_BASE - ($ - $$) db 0
control:
    times USER_CODE - IMAGE_BASE - ($ - $$) db 0

; The driver. For case i: fill the window from the pool, load RFLAGS and the 16 GPRs from the
; case record, jump to the snippet. Only MOV, PUSH/POPFQ and an indirect JMP come between the
; load and the snippet, none of which touches the flags or the loaded registers.
user_entry:
user_next:
    mov rax, [rel control + CTLO_INDEX]
    cmp rax, [rel control + CTLO_COUNT]
    jae user_done
    imul rdi, rax, RESULT_SIZE
    add rdi, [rel control + CTLO_RESULTS]
    mov [rel control + CTLO_RESULT], rdi
    mov rdx, MARKER_MAGIC << 32
    or rdx, rax
    mov [rel control + CTLO_SCRATCH + RES_MARKER], rdx
    imul rbx, rax, CASE_SIZE
    add rbx, [rel control + CTLO_CASES]
    cld
    mov rsi, [rbx + CASE_POOL]
    mov edi, WINDOW_START
    mov ecx, WINDOW_QWORDS
    rep movsq
    mov rax, [rbx + CASE_CODE]
    mov [rel control + CTLO_TARGET], rax
    push qword [rbx + CASE_RFLAGS]
    popfq
    mov rax, [rbx + 0 * 8]
    mov rcx, [rbx + 1 * 8]
    mov rdx, [rbx + 2 * 8]
    mov rbp, [rbx + 5 * 8]
    mov rsi, [rbx + 6 * 8]
    mov rdi, [rbx + 7 * 8]
    mov r8, [rbx + 8 * 8]
    mov r9, [rbx + 9 * 8]
    mov r10, [rbx + 10 * 8]
    mov r11, [rbx + 11 * 8]
    mov r12, [rbx + 12 * 8]
    mov r13, [rbx + 13 * 8]
    mov r14, [rbx + 14 * 8]
    mov r15, [rbx + 15 * 8]
    mov rsp, [rbx + 4 * 8]
    mov rbx, [rbx + 3 * 8]
    jmp [rel control + CTLO_TARGET]

; Every snippet ends with `jmp case_end`. Save RSP first, switch to the harness stack (LEA keeps
; the flags), then RFLAGS, then the rest.
case_end:
    mov [rel control + CTLO_SCRATCH + 4 * 8], rsp
    lea rsp, [rel control + CTLO_HSTACKTOP]
    pushfq
    pop qword [rel control + CTLO_SCRATCH + RES_RFLAGS]
    mov [rel control + CTLO_SCRATCH + 0 * 8], rax
    mov [rel control + CTLO_SCRATCH + 1 * 8], rcx
    mov [rel control + CTLO_SCRATCH + 2 * 8], rdx
    mov [rel control + CTLO_SCRATCH + 3 * 8], rbx
    mov [rel control + CTLO_SCRATCH + 5 * 8], rbp
    mov [rel control + CTLO_SCRATCH + 6 * 8], rsi
    mov [rel control + CTLO_SCRATCH + 7 * 8], rdi
    mov [rel control + CTLO_SCRATCH + 8 * 8], r8
    mov [rel control + CTLO_SCRATCH + 9 * 8], r9
    mov [rel control + CTLO_SCRATCH + 10 * 8], r10
    mov [rel control + CTLO_SCRATCH + 11 * 8], r11
    mov [rel control + CTLO_SCRATCH + 12 * 8], r12
    mov [rel control + CTLO_SCRATCH + 13 * 8], r13
    mov [rel control + CTLO_SCRATCH + 14 * 8], r14
    mov [rel control + CTLO_SCRATCH + 15 * 8], r15
    mov qword [rel control + CTLO_SCRATCH + RES_VECTOR], -1
    mov qword [rel control + CTLO_SCRATCH + RES_ERROR], 0
    mov qword [rel control + CTLO_SCRATCH + RES_CR2], 0
    mov qword [rel control + CTLO_SCRATCH + RES_RIP], 0
; The fault handler returns here too. Copy the header and the window into the result record.
user_store:
    cld
    mov rdi, [rel control + CTLO_RESULT]
    lea rsi, [rel control + CTLO_SCRATCH]
    mov ecx, HEADER_QWORDS
    rep movsq
    mov esi, WINDOW_START
    mov ecx, WINDOW_QWORDS
    rep movsq
    inc qword [rel control + CTLO_INDEX]
    jmp user_next

; PVM quirk: INT n (n != 3) from ring 3 raises #UD there and SYSCALL ignores EFER.SCE, so the
; run ends with a UD2 at this known address, which fault_common recognises.
user_done:
    ud2

; ---------------------------------------------------------------------------------------------
align 64
snippets_start:
%include "cases.inc"
snippets_end:
    ud2
align 4096
image_end:
; The boundary table: image.ts reads it from the file and drops it (it is not loaded).
boundary_table:
%include "boundaries.inc"
