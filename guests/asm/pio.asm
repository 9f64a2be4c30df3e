; pio: port I/O of every width against pc-testdev's 32-bit scratch register at 0xe0-0xe3
; (byte lanes: an access of width w at port 0xe0 + k touches bytes k..k+w-1 of the register,
; as in QEMU's pc-testdev), with immediate and DX port forms, and string I/O (rep outs/ins).
; Runs in real mode. Prints "pio ok" and exits with v = 0x12 (status 37); a failed check
; prints "pio FAIL" and exits with its code:
;   0x61 out/in byte (imm8 port)        0x62 out/in word (DX port)    0x63 out/in dword
;   0x64 byte read of lane 2             0x65 word read of lanes 2-3
;   0x66 byte write keeps the other lanes (dword read-back)
;   0x67 rep outsb leaves the last byte in lane 0
;   0x68 rep insb reads lane 0 each time
;   0x69 rep outsw / rep insw            0x6a rep outsd / rep insd
;
; Expected serial output: "pio ok\n"; exit status 37.

%include "common.inc"

BUF equ 0x6000                      ; RAM buffer for rep ins (ES = 0)

bits 16
org 0

start:
    REAL_MODE_SETUP
    mov dx, TESTDEV_PORT

    ; Byte, immediate port form.
    mov bl, 0x61
    mov al, 0xA5
    out TESTDEV_PORT, al
    xor al, al
    in al, TESTDEV_PORT
    cmp al, 0xA5
    jne fail

    ; Word, DX form.
    mov bl, 0x62
    mov ax, 0xBEEF
    out dx, ax
    xor ax, ax
    in ax, dx
    cmp ax, 0xBEEF
    jne fail

    ; Dword.
    mov bl, 0x63
    mov eax, 0x11223344
    out dx, eax
    xor eax, eax
    in eax, dx
    cmp eax, 0x11223344
    jne fail

    ; Narrow reads of the upper lanes.
    mov bl, 0x64
    in al, TESTDEV_PORT + 2
    cmp al, 0x22
    jne fail
    mov bl, 0x65
    in ax, TESTDEV_PORT + 2
    cmp ax, 0x1122
    jne fail

    ; A byte write to lane 0 keeps lanes 1-3.
    mov bl, 0x66
    mov al, 0xAA
    out TESTDEV_PORT, al
    in eax, dx
    cmp eax, 0x112233AA
    jne fail

    ; rep outsb: three bytes to port 0xe0, the last one stays in lane 0.
    mov bl, 0x67
    mov si, bytes3
    mov cx, 3
    rep outsb
    in al, dx
    cmp al, 'C'
    jne fail
    in eax, dx
    cmp eax, 0x11223343             ; lanes 1-3 untouched
    jne fail

    ; rep insb: four reads of lane 0 into RAM at 0:BUF.
    mov bl, 0x68
    xor ax, ax
    mov es, ax
    mov di, BUF
    mov dword [es:BUF], 0
    mov cx, 4
    rep insb
    cmp dword [es:BUF], 0x43434343
    jne fail
    cmp cx, 0
    jne fail
    cmp di, BUF + 4
    jne fail

    ; rep outsw / rep insw.
    mov bl, 0x69
    mov si, words2
    mov cx, 2
    rep outsw
    mov di, BUF
    mov cx, 2
    rep insw
    cmp dword [es:BUF], 0x56785678
    jne fail

    ; rep outsd / rep insd.
    mov bl, 0x6a
    mov si, dwords2
    mov cx, 2
    rep outsd
    mov di, BUF
    mov cx, 2
    rep insd
    cmp dword [es:BUF], 0xCAFEF00D
    jne fail
    cmp dword [es:BUF + 4], 0xCAFEF00D
    jne fail

    mov si, msg_ok
    call puts16
    EXIT 0x12

fail:                               ; BL = the failed check's exit code
    mov si, msg_fail
    call puts16
    mov al, bl
    out DEBUG_EXIT, al
.stop:
    cli
    hlt
    jmp .stop

DEFINE_PUTS puts16, 16

bytes3:  db 'A', 'B', 'C'
align 2
words2:  dw 0x1234, 0x5678
align 4
dwords2: dd 0xDEADBEEF, 0xCAFEF00D
msg_ok:   db "pio ok", 10, 0
msg_fail: db "pio FAIL", 10, 0

RESET_VECTOR start
