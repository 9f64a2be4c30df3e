// Directed tests for the integer instruction set (SDM vol. 2): data movement, string
// instructions with REP, bit operations, compare-exchange, control transfer, stack, flags,
// I/O, and the system instructions a kernel uses at boot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runAsm, FL, SEL, DATA } from './harness.js';

test('MOVSX / MOVZX / MOVSXD / CBW..CQO / BSWAP', async () => {
  const r = await runAsm('long', `
    mov eax, 0x80
    movsx rbx, al
    movzx ecx, al
    mov edx, 0x8000
    movsx esi, dx
    mov edi, 0x80000000
    movsxd r8, edi
    mov eax, 0xff80
    cbw                  ; AX = sign(AL)
    mov r9, rax
    mov eax, 0x8000
    cwde
    mov r10, rax
    mov eax, 0x80000000
    cdqe
    mov r11, rax
    mov rax, -5
    cqo
    mov r12, rdx
    mov r13, 0x0102030405060708
    bswap r13
    mov r14d, 0x11223344
    bswap r14d
    hlt
  `);
  const g = r.state.regs;
  assert.equal(g.rbx, 0xffffffffffffff80n);
  assert.equal(g.rcx, 0x80n);
  assert.equal(g.rsi, 0xffff8000n);
  assert.equal(g.r8, 0xffffffff80000000n);
  assert.equal(g.r9, 0xff80n);
  assert.equal(g.r10, 0xffff8000n);
  assert.equal(g.r11, 0xffffffff80000000n);
  assert.equal(g.r12, 0xffffffffffffffffn);
  assert.equal(g.r13, 0x0807060504030201n);
  assert.equal(g.r14, 0x44332211n);
});

test('LEA with every addressing form (16/32/64-bit, SIB, RIP-relative, 67 prefix)', async () => {
  const r = await runAsm('long', `
    mov rbx, 0x1000
    mov rsi, 0x20
    lea rax, [rbx + rsi*4 + 0x10]
    lea ecx, [ebx + esi*8 - 1]
    lea rdx, [rel here]
  here:
    lea r8, [rsi*2]
    lea r9, [rsp + 8]
    lea r10, [rbp + r12 + 0x7f]
    lea r11d, [0xfffffff0 + ebx]  ; 32-bit address size wraps
    hlt
  `, (s) => { s.regs.rbp = 0x100n; s.regs.r12 = 0x1n; });
  const g = r.state.regs;
  assert.equal(g.rax, 0x1090n);
  assert.equal(g.rcx, 0x10ffn);
  assert.ok(g.rdx > 0x10000n && g.rdx < 0x10040n);
  assert.equal(g.r8, 0x40n);
  assert.equal(g.r9, 0x80008n);
  assert.equal(g.r10, 0x180n);
  assert.equal(g.r11, 0xff0n);

  const r16 = await runAsm('real', `
    mov bx, 0x10
    mov si, 0x20
    mov bp, 0xfff0
    lea ax, [bx + si + 3]
    lea cx, [bp + 0x20]       ; 16-bit wrap
    lea dx, [bx + di]
    hlt
  `, (s) => { s.regs.rdi = 0x5n; });
  assert.equal(r16.state.regs.rax & 0xffffn, 0x33n);
  assert.equal(r16.state.regs.rcx & 0xffffn, 0x10n);
  assert.equal(r16.state.regs.rdx & 0xffffn, 0x15n);
});

test('XCHG / XADD / CMPXCHG (equal and not equal) / CMPXCHG8B / CMPXCHG16B', async () => {
  const r = await runAsm('long', `
    mov rax, 1
    mov rbx, 2
    xchg rax, rbx
    mov r13, rbx
    mov qword [0x20000], 10
    mov rcx, 5
    lock xadd [0x20000], rcx    ; [m] = 15, rcx = 10
    mov rax, 15
    mov rdx, 99
    lock cmpxchg [0x20000], rdx ; equal: [m] = 99, ZF=1
    pushfq
    pop r8
    mov rax, 1
    cmpxchg [0x20000], rdx      ; not equal: rax = 99, ZF=0
    pushfq
    pop r9
    mov r10, rax
    ; cmpxchg8b: EDX:EAX = [m] ? [m] = ECX:EBX
    mov dword [0x20010], 0x11111111
    mov dword [0x20014], 0x22222222
    mov eax, 0x11111111
    mov edx, 0x22222222
    mov ebx, 0xaaaaaaaa
    mov ecx, 0xbbbbbbbb
    cmpxchg8b [0x20010]
    ; cmpxchg16b, not equal: RDX:RAX loaded
    mov qword [0x20020], 7
    mov qword [0x20028], 8
    xor eax, eax
    xor edx, edx
    cmpxchg16b [0x20020]
    mov r11, rax
    mov r12, rdx
    hlt
  `);
  const g = r.state.regs;
  const m = r.m.mem;
  assert.equal(g.r13, 1n);
  assert.equal(g.rcx, 0xbbbbbbbbn);
  assert.equal(g.r8 & FL.ZF, FL.ZF);
  assert.equal(g.r9 & FL.ZF, 0n);
  assert.equal(g.r10, 99n);
  assert.equal(m.readU64(0x20000), 99n);
  assert.equal(m.readU32(0x20010), 0xaaaaaaaa);
  assert.equal(m.readU32(0x20014), 0xbbbbbbbb);
  assert.equal(g.r11, 7n);
  assert.equal(g.r12, 8n);
});

test('CMPXCHG16B on a misaligned operand raises #GP(0)', async () => {
  const r = await runAsm('long', 'cmpxchg16b [0x20008]\nhlt');
  assert.equal(r.m.cpu.lastException?.vector, 13);
});

test('BT / BTS / BTR / BTC (register, immediate, memory with a large bit offset) and BSF / BSR', async () => {
  const r = await runAsm('long', `
    mov rax, 0x8000000000000001
    bt rax, 63
    setc bl
    bts rax, 4
    btr rax, 0
    btc rax, 1
    mov qword [0x20000], 0
    mov rcx, 65
    bts [0x20000], rcx       ; bit 1 of the next qword
    mov rcx, -1
    bt qword [0x20008], rcx  ; bit 63 of the previous qword: 0
    setc dl
    bsf rsi, rax
    bsr rdi, rax
    xor r8, r8
    mov r9, 0x77
    bsf r9, r8                ; source 0: ZF = 1, destination unchanged
    pushfq
    pop r10
    hlt
  `);
  const g = r.state.regs;
  assert.equal(g.rbx & 0xffn, 1n);
  assert.equal(g.rax, 0x8000000000000012n);
  assert.equal(r.m.mem.readU64(0x20008), 2n);
  assert.equal(g.rdx & 0xffn, 0n);
  assert.equal(g.rsi, 1n);
  assert.equal(g.rdi, 63n);
  assert.equal(g.r9, 0x77n);
  assert.equal(g.r10 & FL.ZF, FL.ZF);
});

test('Jcc / SETcc / CMOVcc agree with the flags for all 16 conditions', async () => {
  // for each condition: compare two values and record SETcc, CMOVcc and whether Jcc was taken
  const conds = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];
  const pairs: [bigint, bigint][] = [[1n, 2n], [2n, 1n], [5n, 5n], [0x8000000000000000n, 1n], [0x7fffffffffffffffn, 0xffffffffffffffffn]];
  for (const [a, b] of pairs) {
    const lines: string[] = [];
    conds.forEach((c, i) => {
      lines.push(`cmp rax, rbx`, `set${c} byte [0x20000 + ${i}]`, `mov rcx, 0`, `mov rdx, 1`, `cmp rax, rbx`, `cmov${c} rcx, rdx`,
        `mov [0x20100 + ${i * 8}], rcx`, `cmp rax, rbx`, `j${c} .t${i}`, `mov byte [0x20200 + ${i}], 0`, `jmp .n${i}`,
        `.t${i}: mov byte [0x20200 + ${i}], 1`, `.n${i}:`);
    });
    lines.push('hlt');
    const r = await runAsm('long', lines.join('\n'), (s) => { s.regs.rax = a; s.regs.rbx = b; });
    const sa = BigInt.asIntN(64, a);
    const sb = BigInt.asIntN(64, b);
    const res = BigInt.asUintN(64, a - b);
    const of = BigInt.asIntN(64, res) !== sa - sb;
    const cf = a < b;
    const zf = a === b;
    const sf = (res >> 63n) === 1n;
    let ones = 0;
    for (let i = 0n; i < 8n; i++) if ((res >> i) & 1n) ones++;
    const pf = ones % 2 === 0;
    const expect = [of, !of, cf, !cf, zf, !zf, cf || zf, !(cf || zf), sf, !sf, pf, !pf, sf !== of, sf === of, zf || sf !== of, !(zf || sf !== of)];
    conds.forEach((c, i) => {
      const want = expect[i] ? 1 : 0;
      assert.equal(r.m.mem.readU8(0x20000 + i), want, `set${c} ${a} ${b}`);
      assert.equal(r.m.mem.readU64(0x20100 + i * 8), BigInt(want), `cmov${c}`);
      assert.equal(r.m.mem.readU8(0x20200 + i), want, `j${c}`);
    });
  }
});

test('CMOV with a 32-bit operand zero-extends even when the condition is false', async () => {
  const r = await runAsm('long', 'mov rax, -1\nxor ecx, ecx\ncmp ecx, ecx\ncmovne eax, ecx\nhlt');
  assert.equal(r.state.regs.rax, 0xffffffffn);
});

test('string instructions: REP MOVSB/MOVSQ, REP STOSD, LODS, REPE CMPSB, REPNE SCASB, DF=1', async () => {
  const r = await runAsm('long', `
    mov rsi, 0x20000
    mov rdi, 0x21000
    mov rcx, 37
    rep movsb
    mov r8, rcx
    mov rdi, 0x22000
    mov eax, 0xdeadbeef
    mov ecx, 10
    rep stosd
    mov rsi, 0x20000
    mov rdi, 0x21000
    mov rcx, 37
    repe cmpsb               ; all equal: RCX = 0, ZF = 1
    mov r9, rcx
    mov rdi, 0x20000
    mov al, 0x7
    mov rcx, 100
    repne scasb              ; find byte 7 at offset 7
    mov r10, rdi
    mov r11, rcx
    std
    mov rsi, 0x20007
    lodsb
    mov r12, rsi
    cld
    mov rsi, 0x20000
    mov rdi, 0x23000
    mov rcx, 3
    rep movsq
    hlt
  `, (_s, m) => { for (let i = 0; i < 64; i++) m.mem.writeU8(0x20000 + i, i); });
  const g = r.state.regs;
  const m = r.m.mem;
  for (let i = 0; i < 37; i++) assert.equal(m.readU8(0x21000 + i), i);
  assert.equal(m.readU8(0x21000 + 37), 0);
  assert.equal(g.r8, 0n);
  for (let i = 0; i < 10; i++) assert.equal(m.readU32(0x22000 + 4 * i), 0xdeadbeef);
  assert.equal(m.readU32(0x22000 + 40), 0);
  assert.equal(g.r9, 0n);
  assert.equal(g.r10, 0x20008n);
  assert.equal(g.r11, 100n - 8n);
  assert.equal(g.rax & 0xffn, 7n);
  assert.equal(g.r12, 0x20006n);
  assert.equal(m.readU64(0x23010), m.readU64(0x20010));
});

test('string instructions fault mid-way with the registers of completed iterations', async () => {
  const r = await runAsm('long', 'mov rdi, 0x1ffff0\nmov rcx, 0x40\nmov al, 1\nrep stosb\nhlt', (_s, m) => {
    m.mem.writeU64(0x3008, 0n); // 0x200000.. not present
  });
  assert.equal(r.m.cpu.lastException?.vector, 14);
  assert.equal(r.state.cr2, 0x200000n);
  assert.equal(r.m.mem.readU64(Number(r.state.regs.rsp) + 8), 0x10000n + 5n + 5n + 2n, 'RIP of the REP STOSB');
  assert.equal(r.state.regs.rcx, 0x40n - 16n);
  assert.equal(r.state.regs.rdi, 0x200000n);
});

test('IN / OUT (immediate and DX ports, all sizes) and INS / OUTS with REP', async () => {
  const log: string[] = [];
  const r = await runAsm('long', `
    mov al, 0x11
    out 0x70, al
    mov dx, 0x3f8
    mov ax, 0x2233
    out dx, ax
    mov eax, 0x44556677
    out dx, eax
    in al, 0x71
    mov bl, al
    in eax, dx
    mov ecx, eax
    mov rsi, 0x20000
    mov rcx, 3
    rep outsb
    mov rdi, 0x21000
    mov rcx, 2
    rep insw
    mov ecx, ebx
    hlt
  `, (_s, m) => {
    m.mem.write(0x20000, new Uint8Array([0xa, 0xb, 0xc]));
    m.bus.addPio(0x70, 2, { name: 'cmos', pioRead: (o, s) => { log.push(`in ${0x70 + o}/${s}`); return 0x99; }, pioWrite: (o, s, v) => { log.push(`out ${0x70 + o}/${s}=${v.toString(16)}`); } });
    m.bus.addPio(0x3f8, 1, { name: 'uart', pioRead: (_o, s) => { log.push(`in 3f8/${s}`); return s === 2 ? 0xbeef : 0x12345678; }, pioWrite: (_o, s, v) => { log.push(`out 3f8/${s}=${v.toString(16)}`); } });
  });
  assert.deepEqual(log, ['out 112/1=11', 'out 3f8/2=2233', 'out 3f8/4=44556677', 'in 113/1', 'in 3f8/4',
    'out 3f8/1=a', 'out 3f8/1=b', 'out 3f8/1=c', 'in 3f8/2', 'in 3f8/2']);
  assert.equal(r.state.regs.rbx & 0xffn, 0x99n);
  assert.equal(r.m.mem.readU16(0x21000), 0xbeef);
  assert.equal(r.m.mem.readU16(0x21002), 0xbeef);
});

test('PUSH / POP (registers, immediates, memory, segment registers), PUSHF / POPF, ENTER / LEAVE', async () => {
  const r = await runAsm('long', `
    push 0x12345678
    pop rax
    push -1
    pop rbx
    mov qword [0x20000], 0x55
    push qword [0x20000]
    pop qword [0x20008]
    push fs
    pop rcx
    push 0x8d5               ; CF PF AF ZF SF OF + bit 11
    popfq
    pushfq
    pop rdx
    mov rbp, 0x1234
    enter 0x20, 0
    mov rsi, rsp
    mov rdi, rbp
    leave
    mov r8, rsp
    mov r9, rbp
    push word 0x7
    pop r10w
    hlt
  `);
  const g = r.state.regs;
  assert.equal(g.rax, 0x12345678n);
  assert.equal(g.rbx, 0xffffffffffffffffn);
  assert.equal(r.m.mem.readU64(0x20008), 0x55n);
  assert.equal(g.rcx, BigInt(SEL.data));
  assert.equal(g.rdx & 0x8d5n, 0x8d5n);
  assert.equal(g.rdi, 0x80000n - 8n);
  assert.equal(g.rsi, 0x80000n - 8n - 0x20n);
  assert.equal(g.r8, 0x80000n);
  assert.equal(g.r9, 0x1234n);
  assert.equal(g.r10 & 0xffffn, 7n);
});

test('CALL / RET near (with imm16), indirect CALL/JMP, LOOP / JRCXZ, far CALL / RETF in 32-bit mode', async () => {
  const r = await runAsm('long', `
    xor ebx, ebx
    call f
    mov rcx, 3
  l:
    inc rbx
    loop l
    lea rax, [rel g]
    call rax
    jrcxz done
    mov rbx, 0
  done:
    hlt
  f:
    add rbx, 100
    ret
  g:
    push 1
    push 2
    call h
    add rbx, [rsp]
    add rsp, 8
    ret
  h:
    ret 8
  `);
  assert.equal(r.state.regs.rbx, 100n + 3n + 2n - 0n - 0n - 0n + 0n - 2n + 1n);
  assert.equal(r.state.regs.rsp, 0x80000n);

  const far = await runAsm('prot32', `
    call ${SEL.code32}:target
    mov ebx, 1
    hlt
  target:
    mov ecx, [esp + 4]
    retf
  `);
  assert.equal(far.state.regs.rcx, BigInt(SEL.code32));
  assert.equal(far.state.regs.rbx, 1n);
  assert.equal(far.state.regs.rsp, 0x80000n);
});

test('LAHF / SAHF, CLC / STC / CMC, CLD / STD, XLAT', async () => {
  const r = await runAsm('long', `
    mov ah, 0xd5
    sahf
    pushfq
    pop rbx
    xor eax, eax
    stc
    cmc
    lahf
    mov cl, ah
    std
    pushfq
    pop rdx
    cld
    mov rbx, 0x20000
    mov al, 3
    xlatb
    hlt
  `, (_s, m) => m.mem.write(0x20000, new Uint8Array([9, 8, 7, 6])));
  const g = r.state.regs;
  assert.equal(g.rcx & 0xffn, 0x46n, 'ZF PF and bit 1 after xor; CF cleared by CMC');
  assert.equal(g.rdx & FL.DF, FL.DF);
  assert.equal(g.rax & 0xffn, 6n);
});

test('CPUID reports what is implemented; RDTSC increases; RDMSR/WRMSR; #GP on an unknown MSR', async () => {
  const r = await runAsm('long', `
    xor eax, eax
    cpuid
    mov r8d, ebx
    mov eax, 1
    cpuid
    mov r9d, edx
    mov r10d, ecx
    mov eax, 0x80000001
    cpuid
    mov r11d, edx
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov r12, rax
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov r13, rax
    mov ecx, 0xc0000081
    mov eax, 0x11223344
    mov edx, 0x55667788
    wrmsr
    xor eax, eax
    rdmsr
    mov r14d, eax
    mov r15d, edx
    mov ecx, 0x12345
    rdmsr
    hlt
  `);
  const g = r.state.regs;
  assert.equal(Buffer.from(new Uint32Array([Number(g.r8)]).buffer).toString(), 'Tsvm');
  assert.equal(g.r9 & 1n, 1n, 'FPU');
  assert.equal(g.r9 & (7n << 24n), 7n << 24n, 'FXSR, SSE, SSE2');
  assert.equal(g.r9 & (1n << 23n), 1n << 23n, 'MMX');
  assert.equal(g.r9 & (1n << 6n), 1n << 6n, 'PAE');
  assert.equal(g.r10 & (1n << 13n), 1n << 13n, 'CX16');
  assert.equal(g.r11 & (1n << 29n), 1n << 29n, 'LM');
  assert.ok(g.r13 > g.r12, 'TSC increases');
  assert.equal(g.r14, 0x11223344n);
  assert.equal(g.r15, 0x55667788n);
  assert.equal(r.m.cpu.lastException?.vector, 13);
});

/** CPUID leaf 7, sub-leaf 0: EDX into R8 (the structured extended feature flags). */
const LEAF7_EDX_TO_R8 = `
    mov eax, 7
    xor ecx, ecx
    cpuid
    mov r8d, edx`;

test('SERIALIZE: reported by CPUID leaf 7 (EDX bit 14, sub-leaf 0 only), a no-op in every mode; #UD with F3 or F2', async () => {
  const r = await runAsm('long', `${LEAF7_EDX_TO_R8}
    mov eax, 7
    mov ecx, 1
    cpuid
    mov r9d, edx
    mov rbx, 0x1234
    serialize
    add rbx, 1
    hlt
  `);
  assert.deepEqual(r.exit, { kind: 'hlt' });
  assert.equal(r.state.regs.r8 & (1n << 14n), 1n << 14n, 'SERIALIZE in sub-leaf 0');
  assert.equal(r.state.regs.r9, 0n, 'sub-leaf 1 reports nothing');
  assert.equal(r.state.regs.rbx, 0x1235n, 'execution goes on after it');
  // Linux's sync_core(): SERIALIZE where CPUID reports it, else an IRET to itself
  for (const mode of ['real', 'prot32', 'compat'] as const) {
    const other = await runAsm(mode, 'serialize\nmov eax, 1\nhlt');
    assert.deepEqual(other.exit, { kind: 'hlt' }, mode);
    assert.equal(other.m.cpu.lastException, undefined, mode);
  }
  for (const prefix of ['0xf3', '0xf2']) {
    const bad = await runAsm('long', `db ${prefix}, 0x0f, 0x01, 0xe8\nhlt`);
    assert.equal(bad.m.cpu.lastException?.vector, 6, `${prefix} 0F 01 E8 is not SERIALIZE`);
  }
});

test('legacy prefixes last one instruction: FS, LOCK, REP and 66 do not carry over to the next', async () => {
  // the interpreter stores the prefix state only after prefixed instructions (interp.ts Step.run)
  const r = await runAsm('long', `
    mov ecx, 0xc0000100 ; IA32_FS_BASE = 0x1000
    mov eax, 0x1000
    xor edx, edx
    wrmsr
    mov qword [0x20000], 0x11
    mov qword [0x21000], 0x22
    mov rdi, 0x20000
    mov r10, [fs:rdi]
    mov rbx, [rdi]
    lock add qword [rdi], 1
    mov r13, [rdi]
    mov rdi, 0x22000
    mov qword [rdi], 0
    mov rcx, 4
    mov al, 0xaa
    rep stosb
    mov rcx, 7
    stosb
    mov r8, rcx
    mov r9, [0x22000]
    mov rdx, -1
    mov dx, 5
    mov edx, 6
    mov qword [0x23000], 0x1111
    mov qword [0x23008], 0x2222
    mov qword [0x23010], 0x3333
    movdqa xmm0, [0x23000] ; 66 0F 6F
    movq mm0, [0x23010]    ; 0F 6F: MMX, not SSE, without the 66
    movq r11, mm0
    movq r12, xmm0
    emms
    hlt
  `, (s) => { s.cr4 |= 0x200n; }); // CR4.OSFXSR: SSE on
  assert.deepEqual(r.exit, { kind: 'hlt' });
  assert.equal(r.m.cpu.lastException, undefined);
  assert.equal(r.state.regs.r10, 0x22n, 'FS:[rdi] reads FS base + rdi');
  assert.equal(r.state.regs.rbx, 0x11n, 'the next [rdi] reads DS, not FS');
  assert.equal(r.state.regs.r13, 0x12n, 'a MOV from memory after a LOCK ADD is not a locked read (#UD)');
  assert.equal(r.state.regs.r8, 7n, 'STOSB after REP STOSB: one store, RCX unchanged');
  assert.equal(r.state.regs.r9, 0xaaaaaaaaaan, 'four bytes from REP STOSB, one from STOSB');
  assert.equal(r.state.regs.rdx, 6n, '32-bit MOV after a 66-prefixed one writes the whole register');
  assert.equal(r.state.regs.r11, 0x3333n, '0F 6F after 66 0F 6F loads MM0');
  assert.equal(r.state.regs.r12, 0x1111n, 'and leaves XMM0 as MOVDQA loaded it');
});

test('ERMS and FSRM: reported by CPUID leaf 7 sub-leaf 0 (EBX bit 9, EDX bit 4), not in sub-leaf 1', async () => {
  const r = await runAsm('long', `${LEAF7_EDX_TO_R8}
    mov r10d, ebx
    mov eax, 7
    mov ecx, 1
    cpuid
    mov r9d, ebx
    hlt
  `);
  assert.deepEqual(r.exit, { kind: 'hlt' });
  assert.equal(r.state.regs.r10 & (1n << 9n), 1n << 9n, 'ERMS: enhanced REP MOVSB/STOSB');
  assert.equal(r.state.regs.r8 & (1n << 4n), 1n << 4n, 'FSRM: fast short REP MOVSB');
  assert.equal(r.state.regs.r9, 0n, 'sub-leaf 1 reports nothing');
});

test('IA32_ARCH_CAPABILITIES: reported by CPUID leaf 7 (EDX bit 29); reads as not affected by the speculation flaws; read-only', async () => {
  const r = await runAsm('long', `${LEAF7_EDX_TO_R8}
    mov ecx, 0x10a
    rdmsr
    shl rdx, 32
    or rax, rdx
    mov r9, rax
    xor eax, eax
    xor edx, edx
    wrmsr
    hlt
  `);
  assert.equal(r.state.regs.r8 & (1n << 29n), 1n << 29n, 'ARCH_CAPABILITIES in sub-leaf 0');
  // what makes Linux skip page-table isolation and its MDS, TAA, SSB and MMIO-stale-data
  // mitigations (SDM vol. 4 table 2-2): RDCL_NO 0, SSB_NO 4, MDS_NO 5, IF_PSCHANGE_MC_NO 6, TAA_NO 8,
  // SBDR_SSDP_NO 13, FBSDP_NO 14, PSDP_NO 15
  for (const bit of [0n, 4n, 5n, 6n, 8n, 13n, 14n, 15n]) assert.equal(r.state.regs.r9 & (1n << bit), 1n << bit, `bit ${bit}`);
  assert.equal(r.state.regs.r9 & 2n, 0n, 'no IBRS_ALL: there is no IA32_SPEC_CTRL');
  assert.equal(r.m.cpu.lastException?.vector, 13, 'WRMSR to it: #GP');
});

test('LGDT / SGDT / LIDT / SIDT, LTR / STR, LLDT / SLDT, MOV CR / DR, CLTS, WBINVD', async () => {
  const r = await runAsm('long', `
    sgdt [0x20000]
    sidt [0x20010]
    mov word [0x20020], 0x5f
    mov qword [0x20022], 0x500
    lgdt [0x20020]
    mov ax, ${SEL.tss}
    and byte [0x500 + ${SEL.tss} + 5], 0xfd  ; make the TSS available again
    ltr ax
    str bx
    xor eax, eax
    lldt ax
    sldt cx
    mov rax, 0x1234
    mov dr0, rax
    mov rdx, dr0
    mov rax, cr0
    or rax, 8
    mov cr0, rax
    clts
    mov rsi, cr0
    wbinvd
    hlt
  `);
  const m = r.m.mem;
  assert.equal(m.readU16(0x20000), 0x5f);
  assert.equal(m.readU64(0x20002), 0x500n);
  assert.equal(m.readU16(0x20010), 0xfff);
  assert.equal(m.readU64(0x20012), 0x4000n);
  assert.equal(r.state.regs.rbx & 0xffffn, BigInt(SEL.tss));
  assert.equal(m.readU8(0x500 + SEL.tss + 5) & 0xf, 0xb, 'TSS marked busy');
  assert.equal(r.state.regs.rcx & 0xffffn, 0n);
  assert.equal(r.state.regs.rdx, 0x1234n);
  assert.equal(r.state.regs.rsi & 8n, 0n, 'CLTS cleared CR0.TS');
  assert.equal(r.state.tr.base, 0x8000n);
});

test('unimplemented instructions stop with an error naming RIP and the bytes', async () => {
  const r = await runAsm('long', 'nop\ndb 0x66, 0x0f, 0x38, 0x00, 0xc1\nhlt'); // PSHUFB (SSSE3)
  assert.equal(r.exit.kind, 'error');
  assert.match((r.exit as { message: string }).message, /opcode 0xf38.*0x10001.*bytes: 66 0f 38 00 c1 f4/s);
  void DATA;
});

test('REP MOVS / STOS over many pages (bulk path), overlapping forward copies, a fault part-way', async () => {
  const r = await runAsm('long', `
    mov rdi, 0x100000
    mov rax, 0x0101010101010101
    mov rcx, 0x2000 / 8 * 3      ; 24 KiB of stosq
    rep stosq
    mov rsi, 0x20003
    mov rdi, 0x100ffd            ; unaligned, crossing pages
    mov rcx, 0x3001
    rep movsb
    mov byte [0x30000], 0xab
    mov rsi, 0x30000
    mov rdi, 0x30001
    mov rcx, 100
    rep movsb                    ; overlapping: replicates the first byte
    hlt
  `, (_s, m) => { for (let i = 0; i < 0x3010; i++) m.mem.writeU8(0x20000 + i, (i * 7) & 0xff); });
  const m = r.m.mem;
  assert.equal(m.readU64(0x100000 + 0x6000 - 8), 0x0101010101010101n);
  assert.equal(m.readU8(0x100000 + 0x6000), 0);
  for (const i of [0, 1, 2, 0x1000, 0x2fff, 0x3000]) assert.equal(m.readU8(0x100ffd + i), ((i + 3) * 7) & 0xff, `byte ${i}`);
  for (let i = 0; i <= 100; i++) assert.equal(m.readU8(0x30000 + i), 0xab);
  assert.equal(r.state.regs.rcx, 0n);
  assert.equal(r.state.regs.rsi, 0x30000n + 100n);

  const f = await runAsm('long', 'mov rdi, 0x1f0000\nxor eax, eax\nmov rcx, 0x20000\nrep stosq\nhlt', (_s, mm) => {
    mm.mem.writeU64(0x3008, 0n); // 0x200000.. not present
  });
  assert.equal(f.m.cpu.lastException?.vector, 14);
  assert.equal(f.state.regs.rdi, 0x200000n);
  assert.equal(f.state.regs.rcx, 0x20000n - 0x10000n / 8n * 1n - 0n);
});

test('LOCK: allowed on read-modify-write memory destinations, #UD otherwise', async () => {
  const ok = await runAsm('long', 'mov qword [0x20000], 1\nlock add [0x20000], rax\nlock bts qword [0x20000], 5\nlock inc dword [0x20000]\nhlt', (s) => { s.regs.rax = 2n; });
  assert.deepEqual(ok.exit, { kind: 'hlt' });
  assert.equal(ok.m.mem.readU64(0x20000), 3n + 32n + 1n);
  for (const bytes of ['0xf0, 0x48, 0x01, 0xd8', '0xf0, 0x90', '0xf0, 0x48, 0x8b, 0x06', '0xf0, 0x0f, 0xa3, 0x06']) {
    const r = await runAsm('long', `db ${bytes}\nhlt`, (s) => { s.regs.rsi = 0x20000n; });
    assert.equal(r.m.cpu.lastException?.vector, 6, bytes);
  }
});
