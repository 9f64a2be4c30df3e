; blkbench: the in-guest disk workload of `npm run bench:blk`. A static x86-64 Linux program
; (no libc, no linker: `nasm -f bin` with its own ELF header) that opens a block device with
; O_DIRECT, so the guest's page cache never answers for the device, and issues one request at a
; time (queue depth 1, like `dd` or fio's psync engine) until a time limit:
;
;   blkbench <r|w> <s|r> <block bytes> <seconds> <device>
;     r|w       pread64 or pwrite64
;     s|r       sequential (wrapping at the end of the device) or random block-aligned offsets
;               (xorshift64, a fixed seed: every run and every VMM sees the same offsets)
;
; When the time is up it prints one line and exits 0:
;   blkbench <r|w> <s|r> <block bytes> ops=<requests> ns=<elapsed CLOCK_MONOTONIC nanoseconds>
; On a failed system call, a short transfer or bad arguments: "blkbench: error <what> <value>",
; exit status 1. The block size must be a multiple of 512 and at most MAX_BS; the data buffer
; is page-aligned, as O_DIRECT wants. Written data is a non-zero pattern.

bits 64
ORG_ADDR        equ 0x400000
MAX_BS          equ 4 << 20

SYS_WRITE       equ 1
SYS_OPEN        equ 2
SYS_IOCTL       equ 16
SYS_PREAD64     equ 17
SYS_PWRITE64    equ 18
SYS_CLOCK_GETTIME equ 228
SYS_EXIT_GROUP  equ 231
O_RDONLY        equ 0
O_RDWR          equ 2
O_DIRECT        equ 0o40000         ; x86-64 value
BLKGETSIZE64    equ 0x80081272      ; _IOR(0x12, 114, u64)
CLOCK_MONOTONIC equ 1

org ORG_ADDR

; ---- ELF64 header and one RWX PT_LOAD segment covering the file and the buffers after it ----
ehdr:
    db 0x7f, 'ELF', 2, 1, 1, 0      ; 64-bit, little-endian, version 1, System V ABI
    dq 0
    dw 2                            ; ET_EXEC
    dw 0x3e                         ; x86-64
    dd 1
    dq _start                       ; entry
    dq phdr - ehdr                  ; program header table offset
    dq 0                            ; no section headers
    dd 0
    dw ehdr_size, phdr_size, 1      ; header size, program header size, count
    dw 0, 0, 0
ehdr_size equ $ - ehdr

phdr:
    dd 1                            ; PT_LOAD
    dd 7                            ; R W X
    dq 0                            ; file offset
    dq ORG_ADDR, ORG_ADDR           ; virtual and physical address
    dq file_end - ehdr              ; bytes in the file
    dq MEM_SIZE                     ; bytes in memory (the rest is zero-filled)
    dq 0x1000
phdr_size equ $ - phdr

; ---- program ----
_start:
    cmp qword [rsp], 6              ; argc
    jne bad_args
    mov rax, [rsp + 16]             ; argv[1]: r or w
    movzx eax, byte [rax]
    cmp al, 'w'
    sete byte [is_write]
    je .op_ok
    cmp al, 'r'
    jne bad_args
.op_ok:
    mov rax, [rsp + 24]             ; argv[2]: s or r
    movzx eax, byte [rax]
    cmp al, 'r'
    sete byte [is_random]
    je .pattern_ok
    cmp al, 's'
    jne bad_args
.pattern_ok:
    mov rsi, [rsp + 32]             ; argv[3]: block size
    call parse_uint
    test rax, rax
    jz bad_args
    test eax, 511
    jnz bad_args
    cmp rax, MAX_BS
    ja bad_args
    mov [block_size], rax
    mov rsi, [rsp + 40]             ; argv[4]: seconds
    call parse_uint
    test rax, rax
    jz bad_args
    imul rax, rax, 1000000000
    mov [limit_ns], rax
    mov rdi, [rsp + 48]             ; argv[5]: device

    mov esi, O_RDONLY | O_DIRECT
    cmp byte [is_write], 0
    je .open
    mov esi, O_RDWR | O_DIRECT
.open:
    mov eax, SYS_OPEN
    xor edx, edx
    syscall
    lea rsi, [msg_open]
    test rax, rax
    js fail
    mov [fd], rax

    mov rdi, rax
    mov esi, BLKGETSIZE64
    lea rdx, [dev_bytes]
    mov eax, SYS_IOCTL
    syscall
    lea rsi, [msg_size]
    test rax, rax
    js fail
    mov rax, [dev_bytes]
    xor edx, edx
    div qword [block_size]
    lea rsi, [msg_size]
    test rax, rax
    jz fail
    mov [blocks], rax

    ; Fill the buffer with a non-zero pattern (what writes send; reads overwrite it).
    mov rdi, BUF
    mov rcx, [block_size]
    shr rcx, 3
    mov rax, 0x5a5a5a5a00000001
    mov rdx, 0x0000000100000001
.fill:
    mov [rdi], rax
    add rdi, 8
    add rax, rdx
    dec rcx
    jnz .fill

    call now_ns
    mov [start_ns], rax
    mov r12, 0x9e3779b97f4a7c15     ; xorshift64 state
    xor r13, r13                    ; next sequential block
    xor r14, r14                    ; requests done

.loop:
    cmp byte [is_random], 0
    je .sequential
    mov rax, r12                    ; xorshift64 (13, 7, 17)
    shl rax, 13
    xor r12, rax
    mov rax, r12
    shr rax, 7
    xor r12, rax
    mov rax, r12
    shl rax, 17
    xor r12, rax
    mov rax, r12
    xor edx, edx
    div qword [blocks]
    mov rax, rdx
    jmp .have_block
.sequential:
    mov rax, r13
    inc r13
    cmp r13, [blocks]
    jb .have_block
    xor r13, r13
.have_block:
    imul rax, [block_size]
    mov r10, rax                    ; offset
    mov rdi, [fd]
    mov rsi, BUF
    mov rdx, [block_size]
    mov eax, SYS_PREAD64
    cmp byte [is_write], 0
    je .io
    mov eax, SYS_PWRITE64
.io:
    syscall
    cmp rax, [block_size]
    lea rsi, [msg_io]
    jne fail
    inc r14
    call now_ns
    sub rax, [start_ns]
    cmp rax, [limit_ns]
    jb .loop
    mov r15, rax                    ; elapsed ns

    ; "blkbench <argv1> <argv2> <argv3> ops=<n> ns=<t>\n"
    lea rdi, [out]
    lea rsi, [msg_name]
    call append
    mov rsi, [rsp + 16]
    call append
    mov byte [rdi], ' '
    inc rdi
    mov rsi, [rsp + 24]
    call append
    mov byte [rdi], ' '
    inc rdi
    mov rsi, [rsp + 32]
    call append
    lea rsi, [msg_ops]
    call append
    mov rax, r14
    call append_uint
    lea rsi, [msg_ns]
    call append
    mov rax, r15
    call append_uint
    mov byte [rdi], 10
    inc rdi
    call print_out
    xor edi, edi
    mov eax, SYS_EXIT_GROUP
    syscall

bad_args:
    lea rsi, [msg_args]
    xor eax, eax
; Prints "blkbench: error <rsi> <rax as a signed number>" and exits 1.
fail:
    mov rbx, rax
    lea rdi, [out]
    push rsi
    lea rsi, [msg_error]
    call append
    pop rsi
    call append
    mov byte [rdi], ' '
    inc rdi
    mov rax, rbx
    test rax, rax
    jns .positive
    mov byte [rdi], '-'
    inc rdi
    neg rax
.positive:
    call append_uint
    mov byte [rdi], 10
    inc rdi
    call print_out
    mov edi, 1
    mov eax, SYS_EXIT_GROUP
    syscall

; rax = CLOCK_MONOTONIC in nanoseconds.
now_ns:
    mov edi, CLOCK_MONOTONIC
    lea rsi, [timespec]
    mov eax, SYS_CLOCK_GETTIME
    syscall
    imul rax, [timespec], 1000000000
    add rax, [timespec + 8]
    ret

; rax = the decimal number at rsi (NUL-terminated); 0 if it has anything but digits.
parse_uint:
    xor eax, eax
.next:
    movzx ecx, byte [rsi]
    test ecx, ecx
    jz .done
    sub ecx, '0'
    cmp ecx, 9
    ja .bad
    imul rax, rax, 10
    add rax, rcx
    inc rsi
    jmp .next
.bad:
    xor eax, eax
.done:
    ret

; Copies the NUL-terminated string at rsi to rdi (without the NUL); rdi ends after it.
append:
    mov al, [rsi]
    test al, al
    jz .done
    mov [rdi], al
    inc rdi
    inc rsi
    jmp append
.done:
    ret

; Writes rax in decimal at rdi; rdi ends after it.
append_uint:
    lea rsi, [digits_end]
    mov ecx, 10
.digit:
    xor edx, edx
    div rcx
    add dl, '0'
    dec rsi
    mov [rsi], dl
    test rax, rax
    jnz .digit
    jmp append

; Writes out..rdi to stdout.
print_out:
    lea rsi, [out]
    mov rdx, rdi
    sub rdx, rsi
    mov edi, 1
    mov eax, SYS_WRITE
    syscall
    ret

msg_name:   db 'blkbench ', 0
msg_ops:    db ' ops=', 0
msg_ns:     db ' ns=', 0
msg_error:  db 'blkbench: error ', 0
msg_args:   db 'usage: blkbench r|w s|r <block bytes, multiple of 512> <seconds> <device>', 0
msg_open:   db 'open', 0
msg_size:   db 'device size', 0
msg_io:     db 'transfer', 0

align 8
is_write:   db 0
is_random:  db 0
align 8
fd:         dq 0
block_size: dq 0
limit_ns:   dq 0
dev_bytes:  dq 0
blocks:     dq 0
start_ns:   dq 0
timespec:   dq 0, 0
digits:     times 24 db 0
digits_end: db 0
out:        times 256 db 0
file_end:

; The data buffer lives after the file's bytes, page-aligned, in the zero-filled part of the segment.
BUF         equ ORG_ADDR + ((file_end - ehdr + 4095) & ~4095)
MEM_SIZE    equ BUF - ORG_ADDR + MAX_BS
