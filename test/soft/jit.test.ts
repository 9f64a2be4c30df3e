// The software CPU's JIT (src/accel/soft/jit/, src/accel/soft/as/jit.ts): compiled blocks must
// leave exactly the state the interpreter leaves. Each program runs twice, once with the JIT
// compiling every block the first time it is reached (tune(1, 0)) and once with the JIT off
// (TSVM_SOFT_JIT=0), and the results are compared; plus self-modifying code, blocks next to page
// boundaries, faults in the middle of a block, CPL changes and exact instruction budgets.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CODE, DATA, STACK, TO_USER64, SYSCALL_MSRS, SEL, assemble, machine, runAsm, stubRip, type Machine, type RunResult, type Mode } from './harness.js';
import type { CpuState } from '../../src/accel/cpu-state.js';
import { countingRuns, setOf, JIT_GEN, JIT_TABLE, E_CPL, E_FN, E_HOST, E_LEN, E_RIP } from '../../src/accel/soft/jit/block-table.js';
import { JIT_AREA, O, STATE_AREA as STATE_BASE } from '../../src/accel/soft/layout.js';
import { dropPrestartedCompilerThread, prestartCompilerThread } from '../../src/accel/soft/jit/jit.js';
import { wasmMemoryOf } from '../../src/accel/soft/soft-memory.js';

type Setup = (s: CpuState, m: Machine) => void;

/** With TSVM_SOFT_JIT=0 in the environment (the whole suite run without the JIT) these are skipped. */
const skip = process.env.TSVM_SOFT_JIT === '0' ? 'TSVM_SOFT_JIT=0' : false;

/**
 * Map linear 0x40000000, 0x40001000, ... (PDPT[1] -> PD at 0x40000 -> PT at 0x41000) to the
 * physical pages `pages`, in that order.
 */
function mapAt1GiB(m: Machine, ...pages: number[]): void {
  m.mem.writeU64(0x2000 + 8, 0x40000n | 7n); // PDPT[1] -> PD at 0x40000
  m.mem.writeU64(0x40000, 0x41000n | 7n); // PD[0] -> PT at 0x41000
  pages.forEach((p, i) => m.mem.writeU64(0x41000 + i * 8, BigInt(p) | 7n));
}

async function runBoth(mode: Mode, src: string, setup?: Setup, budget = 2_000_000): Promise<{ jit: RunResult; interp: RunResult }> {
  const jit = await runAsm(mode, src, (s, m) => {
    assert.ok(m.cpu.jit, 'the JIT is on by default');
    m.cpu.jit.tune(1, 0);
    setup?.(s, m);
  }, budget);
  const old = process.env.TSVM_SOFT_JIT;
  process.env.TSVM_SOFT_JIT = '0';
  let interp: RunResult;
  try {
    interp = await runAsm(mode, src, (s, m) => {
      assert.equal(m.cpu.jit, undefined, 'TSVM_SOFT_JIT=0 turns the JIT off');
      setup?.(s, m);
    }, budget);
  } finally {
    if (old === undefined) delete process.env.TSVM_SOFT_JIT;
    else process.env.TSVM_SOFT_JIT = old;
  }
  return { jit, interp };
}

/** How many compiled blocks in the block table have code that starts with `bytes`. */
function compiledStartingWith(r: RunResult, bytes: number[]): number {
  const view = new DataView(r.m.mem.buffer);
  let n = 0;
  for (let e = JIT_TABLE; e < JIT_TABLE + (1 << 15) * 32; e += 32) {
    const host = view.getUint32(e + E_HOST, true);
    if (host === 0 || view.getInt32(e + E_FN, true) <= 0) continue;
    if (bytes.every((b, i) => view.getUint8(host + i) === b)) n++;
  }
  return n;
}

function assertSame(r: { jit: RunResult; interp: RunResult }, dataBytes = 0x200): void {
  assert.deepEqual(r.jit.exit, r.interp.exit);
  assert.deepEqual(r.jit.state.regs, r.interp.state.regs);
  assert.equal(r.jit.state.cr2, r.interp.state.cr2);
  assert.equal(r.jit.m.cpu.instructions, r.interp.m.cpu.instructions, 'instructions retired');
  assert.deepEqual(r.jit.m.mem.read(DATA, dataBytes), r.interp.m.mem.read(DATA, dataBytes));
  assert.deepEqual(r.jit.m.mem.read(STACK - 0x100, 0x100), r.interp.m.mem.read(STACK - 0x100, 0x100));
}

test('JIT: integer instructions in hot loops match the interpreter (registers, flags, memory)', { skip }, async () => {
  const r = await runBoth('long', `
    mov rsi, ${DATA}
    mov rcx, 300
    xor ebx, ebx
    mov rdx, 0x123456789abcdef
  top:
    mov rax, rcx
    imul rax, rax, 7
    add rbx, rax
    adc rbx, 3
    sbb rdx, rcx
    xor rdx, rbx
    rol rdx, 5
    shr rax, 3
    sar rdx, cl
    shl ebx, 1
    mov [rsi + rcx*8 - 8], rax
    mov r8, [rsi + rcx*8 - 8]
    lea r9, [r8 + rbx*2 + 0x40]
    movzx r10d, r9b
    movsx r11, r9w
    movsxd r12, r9d
    mov ah, bl
    mov bh, al
    add [rsi + 0x10], ah
    sub word [rsi + 0x20], 0x1234
    or byte [rsi + 0x30], cl
    and dword [rsi + 0x34], 0xfff0fff
    inc qword [rsi + 0x40]
    dec byte [rsi + 0x48]
    neg r12
    not r11
    cmp rax, rbx
    setb byte [rsi + 0x50]
    setle r13b
    cmovg r14, rdx
    cmovnc r15d, ecx
    test cl, 3
    jz .skip
    push rax
    push qword [rsi + 0x40]
    pop rdi
    pop rbp
    xadd [rsi + 0x58], rbp
    mov rax, [rsi + 0x60]
    lock cmpxchg [rsi + 0x60], rcx
    xchg r8, [rsi + 0x68]
    bsf r10, rdi
    bsr r11, rbx
    cqo
    cdqe
    bt rax, 3
    bts qword [rsi + 0x70], rcx
    setc byte [rsi + 0x88]
    btr r10, 5
    btc dword [rsi + 0x78], 7
    bt [rsi + 0x80], rdx
    adc r11, 0
    tzcnt r12, rbx
    pushf
    pop r13
    cli
    prefetcht0 [rsi]
    call fn
  .skip:
    dec rcx
    jnz top
    pushf
    pop rax
    hlt
  fn:
    add r15, 1
    ret
  `);
  assertSame(r);
  assert.ok(r.jit.m.cpu.jit!.stats.blocks > 3, 'blocks were compiled');
});

test('JIT: SWAPGS at CPL 0 is compiled (a block may start with it) and swaps GS base and KERNEL_GS_BASE as the interpreter does', { skip }, async () => {
  const r = await runBoth('long', `
    mov ecx, 0xc0000101          ; IA32_GS_BASE
    mov eax, ${DATA}
    xor edx, edx
    wrmsr
    mov ecx, 0xc0000102          ; IA32_KERNEL_GS_BASE
    mov eax, ${DATA + 0x100}
    wrmsr
    mov rsi, ${DATA}
    mov qword [rsi + 8], 0x11
    mov qword [rsi + 0x108], 0x22
    mov rcx, 5
  top:
    swapgs                       ; a block starts here: the entry of a system call
    add rax, [gs:8]
    swapgs
    add rbx, [gs:8]
    mov [gs:0x20], rcx
    dec rcx
    jnz top
    swapgs
    mov ecx, 0xc0000102
    rdmsr
    mov r8, rax
    hlt
  `);
  assertSame(r);
  assert.equal(r.jit.state.regs.r8, BigInt(DATA), 'an odd number of SWAPGS leaves the first GS base in KERNEL_GS_BASE');
  assert.equal(r.jit.state.regs.rbx, 5n * 0x11n);
  // a compiled block in the table starts with SWAPGS (refused, the loop's head would be interpreted)
  assert.ok(compiledStartingWith(r.jit, [0x0f, 0x01, 0xf8]) >= 1, 'a block starting with SWAPGS was compiled');
});

test('JIT: STI followed by a NOP is compiled; a pending interrupt is taken right after the NOP, as the interpreter takes it', { skip }, async () => {
  const src = 'cli\nmov rcx, 1\nsti\nnop\nmov rbx, 1\nmov rdx, 1\nhlt';
  const r = await runBoth('long', src, (_s, m) => {
    let pending = 1;
    m.cpu.interruptSource = { pending: () => pending > 0, acknowledge: () => { pending--; return 0x30; } };
  });
  assertSame(r);
  assert.equal(r.jit.state.regs.rip, stubRip(0x30), 'in the handler');
  assert.equal(r.jit.state.regs.rcx, 1n);
  assert.equal(r.jit.state.regs.rbx, 0n, 'the interrupt came before the instruction after the NOP');
  // return RIP: the MOV after the NOP (cli 1, mov ecx 5, sti 1, nop 1 bytes after CODE)
  assert.equal(r.jit.m.mem.readU64(Number(r.jit.state.regs.rsp)), BigInt(CODE) + 8n);
  // the first block took the STI and its NOP and ended after them (4 instructions; without STI
  // compiled it ends before it, at 2)
  const view = new DataView(r.jit.m.mem.buffer);
  let len = -1;
  for (let e = JIT_TABLE; e < JIT_TABLE + (1 << 15) * 32; e += 32) {
    if (view.getUint32(e + E_HOST, true) !== 0 && view.getBigUint64(e + E_RIP, true) === BigInt(CODE) && view.getInt32(e + E_FN, true) > 0) len = view.getUint8(e + E_LEN);
  }
  assert.equal(len, 4, 'the first block: CLI, MOV, STI, NOP');
});

test('JIT: RDTSC at CPL 0 is compiled (it ends its block); the TSC it reads goes up, in EDX:EAX', { skip }, async () => {
  const src = `
    mov ecx, 0x10                ; IA32_TIME_STAMP_COUNTER: a TSC with an upper half
    mov edx, 0x1234
    xor eax, eax
    wrmsr
    mov rcx, 20
  top:
    rdtsc                        ; a block starts here
    mov r10, rax
    shr r10, 32
    or r11, r10                  ; RAX's upper half is zero
    shl rdx, 32
    or rax, rdx
    cmp rax, r8
    jb .back                     ; never: the TSC does not go back
    mov r8, rax
    add r9, 1
  .back:
    dec rcx
    jnz top
    hlt
  `;
  const r = await runBoth('long', src);
  assert.deepEqual(r.jit.exit, r.interp.exit);
  assert.equal(r.jit.state.regs.r9, 20n, 'every read was at least the one before');
  assert.equal(r.jit.state.regs.r9, r.interp.state.regs.r9);
  assert.ok(r.jit.state.regs.r8 >= 0x1234n << 32n, 'the TSC WRMSR set, and on');
  assert.equal(r.jit.state.regs.r11, 0n, 'RDTSC zero-extends EAX into RAX');
  assert.equal(r.jit.m.cpu.instructions, r.interp.m.cpu.instructions, 'instructions retired');
  assert.ok(compiledStartingWith(r.jit, [0x0f, 0x31]) >= 1, 'a block starting with RDTSC was compiled');
});

test('JIT: LFENCE, MFENCE and SFENCE are compiled (a block may start with them)', { skip }, async () => {
  const r = await runBoth('long', `
    mov rcx, 10
  top:
    lfence
    add rax, rcx
    mfence
    sfence
    dec rcx
    jnz top
    hlt
  `);
  assertSame(r);
  assert.ok(compiledStartingWith(r.jit, [0x0f, 0xae, 0xe8]) >= 1, 'a block starting with LFENCE was compiled');
  assert.equal(r.jit.m.cpu.jit!.stats.refused, 1, 'only the HLT block was refused');
});

test('JIT: the code after an STI and its shadow instruction is looked up and compiled', { skip }, async () => {
  // Linux's local_irq_enable() is STI then a NOP (its shadow); the run loop used to go on
  // interpreting after the shadow instruction up to the next branch, at every system call's exit.
  const r = await runBoth('long', `
    mov rcx, 20
  top:
    cli
    sti
    nop                          ; the shadow: runs alone, then interrupts are checked
    mov r14, 0x5a5a5a5a          ; a block should start here
    add r13, r14
    xor r12, r13
    dec rcx
    jnz top
    hlt
  `);
  assertSame(r);
  // mov r14, 0x5a5a5a5a (nasm: 41 BE and the immediate)
  assert.ok(compiledStartingWith(r.jit, [0x41, 0xbe, 0x5a, 0x5a, 0x5a, 0x5a]) >= 1, 'a block starting after the shadow instruction was compiled');
});

test('JIT: conditions after every kind of flag producer match the interpreter', { skip }, async () => {
  // every Jcc/SETcc condition after ADD, SUB/CMP, logic, INC/DEC, shifts, NEG, IMUL and MUL, at all sizes
  let body = '';
  const producers = ['add al, bl', 'sub ax, bx', 'cmp eax, ebx', 'cmp rax, rbx', 'and eax, ebx', 'test al, bl', 'inc bx', 'dec rax', 'shl eax, 1', 'shr bx, 3', 'sar al, 5', 'shl rax, 63', 'sar rax, 17', 'neg bl', 'adc rax, rbx', 'sbb eax, ebx',
    // IMUL's lazy CF/OF (as/flags.ts OP_IMUL), with and without overflow, and the INT64_MIN * -1 corner
    'imul rax, rbx', 'imul eax, ebx, -3', 'imul bx, ax', 'imul rax, rax, 0x40000001',
    'mov rax, 0x8000000000000000\nmov rbx, -1\nimul rax, rbx', 'mov rax, 0x8000000000000000\nmov rbx, -1\nimul rbx, rax', 'mov rbx, -1\nimul rbx, rbx',
    // MUL's lazy flags (OP_MUL) and rDX:rAX, 64- and 32-bit, register and memory, with and without a high half
    'mul rbx', 'mul ebx', 'mul qword [r8 + 8]', 'mul dword [r8 + 12]', 'mov rbx, 3\nmul rbx', 'mov ebx, 1\nmul ebx',
    // ROL/ROR by a constant change only CF and OF (compiler.ts Pend.patch): after a producer still
    // in locals, after flags already stored, twice in a row, at every size, in memory
    'add al, bl\nrol al, 3', 'cmp rax, rbx\nror rax, 1', 'rol ebx, 13', 'ror bx, 15', 'rol rax, 63', 'ror rbx, 32',
    'sub eax, ebx\nror eax, 7\nrol eax, 9', 'rol byte [r8 + 0x1f0], 3', 'ror word [r8 + 0x1e0], 4', 'ror dword [r8 + 0x1d0], 31',
    'ror rax, 5\nadc rbx, 0', 'and ebx, eax\nrol rbx, 1\ninc rax',
    // SHL/SHR/SAR by a constant keep their flags in locals (compiler.ts Pend.shift): read by ADC
    // and a rotate's patch, overwritten unread, in memory, before a memory access that may exit
    'shr rax, 7\nadc rbx, 0', 'shl ebx, 5\nrol ebx, 3', 'sar rax, 63\nsbb ebx, eax', 'shl rax, 1\nshr rbx, 1\nadd rax, rbx',
    'sar word [r8 + 0x1c0], 3', 'shl byte [r8 + 0x1b0], 7', 'shr dword [r8 + 0x1a0], 31', 'shl rbx, 9\nmov rax, [r8 + 0x1f8]'];
  const ccs = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];
  producers.forEach((p, i) => {
    ccs.forEach((cc, j) => {
      body += `mov rax, rsi\nmov rbx, rdi\n${p}\nset${cc} byte [r8 + ${(i * 16 + j) % 0x200}]\nj${cc} .t${i}_${j}\nadd r9, ${j + 1}\n.t${i}_${j}:\n`;
    });
  });
  const r = await runBoth('long', `
    mov r8, ${DATA}
    mov rcx, 40
    mov rsi, 0x7fffffff80000001
    mov rdi, 0x80000000ffffffff
  top:
    ${body}
    imul rsi, rsi, 0x61c88647
    add rdi, rsi
    ror rdi, 7
    dec rcx
    jnz top
    hlt
  `);
  assertSame(r);
});

test('JIT: self-modifying code (a compiled function whose immediate changes, a store into the running block)', { skip }, async () => {
  const r = await runBoth('long', `
    mov rcx, 100
    xor ebx, ebx
  top:
    call fn
    add rbx, rax
    inc dword [rel fn + 1]
    dec rcx
    jnz top
    ; a block that rewrites its own next instruction: the new one must run
    mov rcx, 50
  again:
    mov byte [rel patch + 1], cl
  patch:
    mov al, 0
    movzx edx, al
    add r8, rdx
    dec rcx
    jnz again
    hlt
  fn:
    mov eax, 0
    ret
  `);
  assertSame(r);
  assert.equal(r.jit.state.regs.rbx, BigInt((99 * 100) / 2));
  assert.equal(r.jit.state.regs.r8, BigInt((50 * 51) / 2));
});

test('JIT: a compiled block whose page is written is compiled again after a few runs, not a threshold\'s worth', { skip }, async () => {
  // fn becomes hot (threshold 100) and is compiled; a store rewrites its immediate, which makes it
  // stale; it must then run the new code, interpreted for its first runs and compiled again well
  // before another 100 (Linux's text patching rewrites the pages of its own hot code)
  const src = (passes: number) => `
    mov rcx, 150
  warm:
    call fn
    dec rcx
    jnz warm
    mov dword [rel fn + 1], 2
    xor ebx, ebx
    mov rcx, ${passes}
  again:
    call fn
    add rbx, rax
    dec rcx
    jnz again
    hlt
    times 64 nop            ; (a call 15 bytes ahead or less is not looked up: as/index.ts run)
  fn:
    mov eax, 1
    ret
  `;
  const tuned: Setup = (_s, m) => m.cpu.jit?.tune(100, 0);
  const blocksAfter = async (passes: number) => {
    const r = await runAsm('long', src(passes), tuned);
    assert.deepEqual(r.exit, { kind: 'hlt' });
    assert.equal(r.state.regs.rbx, BigInt(2 * passes), `${passes} calls of the rewritten fn return 2`);
    return r.m.cpu.jit!.stats.blocks;
  };
  const before = await blocksAfter(5);
  const after = await blocksAfter(40);
  assert.ok(after > before, `fn compiled again within 40 runs after the write (blocks ${before} -> ${after})`);
});

test('JIT: host writes into guest RAM (device DMA) make compiled code stale', { skip }, async () => {
  const r = await runAsm('long', `
  top:
    call fn
    add rbx, rax
    jmp top
  fn:
    mov eax, 1
    ret
  `, (_s, m) => m.cpu.jit!.tune(1, 0), 3000);
  assert.deepEqual(r.exit, { kind: 'budget' });
  const before = r.state.regs.rbx;
  assert.ok(before > 0n && r.m.cpu.jit!.stats.blocks > 0);
  // a device overwrites fn's immediate (mov eax, imm32 at fn + 1): the new value must be used
  const fn = CODE + 5 + 3 + 2; // call rel32, add rbx, rax, jmp rel8
  assert.equal(r.m.mem.readU8(fn), 0xb8);
  r.m.mem.write(fn + 1, new Uint8Array([2, 0, 0, 0]));
  r.m.cpu.run(3000);
  const after = r.m.cpu.getState().regs.rbx - before;
  assert.equal(before, 600n, '3000 instructions: 600 iterations of 5');
  assert.equal(after, 2n * 600n, 'every call after the write returns 2');
});

test('JIT: instructions and blocks next to and across a page boundary', { skip }, async () => {
  // CODE is page aligned: put a loop so that an instruction straddles CODE + 0x1000
  const pad = 0x1000 - 0x20;
  const r = await runBoth('long', `
    mov rcx, 200
    jmp loop
    times ${pad} - ($ - $$) db 0x90
  loop:
    add rax, rcx
    mov rdx, 0x1122334455667788
    add rdx, rax
    add rbx, 0x12345678
    xor rdx, rbx
    mov rdx, 0x1122334455667788
    add rdx, rax
    add rbx, 0x12345678
    xor rsi, rdx
    dec rcx
    jnz loop
    hlt
  `);
  assertSame(r);
});

/** Physical pages for the tests below: A holds linear page 0x40000000, B1 page 0x40001000 (B2 after a remap). */
const A = 0x50000, B1 = 0x52000, B2 = 0x54000;

test('JIT: an instruction that runs on into the next page is compiled behind a guard on that page (remapped, rewritten)', { skip }, async () => {
  // Linear 0x40000000 maps to physical page A and 0x40001000 to B1, later to B2: a loop at the end
  // of the first page whose MOV EDX, imm32 has its last immediate byte on the second page.
  const blob = (imm: number) => assemble(`
    loop:
      add rax, rcx
      add rax, rcx
      add rax, rcx
      add rax, rcx
      mov edx, ${imm}       ; 0x40000ffc: BA and three bytes here, the fourth at 0x40001000
      add rbx, rdx
      dec rcx
      jnz loop
      ret
    helper:                 ; on the second page: makes it a code page, as it would be in a kernel
      add r10, 1
      ret
  `, 64, 0x40000ff0);
  const [one, two] = await Promise.all([blob(0x11223344), blob(0x55223344)]);
  const setup: Setup = (_s, m) => {
    mapAt1GiB(m, A, B1);
    m.mem.write(A + 0xff0, one.subarray(0, 16));
    m.mem.write(B1, one.subarray(16));
    m.mem.write(B2, two.subarray(16));
    m.cpu.jit?.tune(3, 0);
  };
  const helper = 0x40000ff0 + one.length - 5;
  const start = `
    mov r9, 0x40000ff0
    mov r11, ${helper}
    call r11
    call r11
    call r11
    call r11
    mov rcx, 300
    call r9
  `;
  // the loop alone: once hot, nothing of it is interpreted
  const first = await runBoth('long', `${start}\nhlt`, setup);
  assertSame(first);
  const core = (first.jit.m.cpu as unknown as { core: { jitInterpretedCount: () => number } }).core;
  const interpreted = core.jitInterpretedCount();
  assert.ok(interpreted < 100, `instructions interpreted: ${interpreted} (300 iterations of 8; the MOV that crosses is compiled)`);
  const sum = (hi: bigint) => 300n * ((hi << 24n) | 0x223344n);
  // the second page remapped (same linear page, another physical page whose byte is 0x55): the
  // guard's TLB compare; then that byte rewritten through the guest's mapping: its generation
  const remapped = await runBoth('long', `${start}
    mov r12, rbx
    mov qword [0x41008], ${B2} | 7
    invlpg [0x40001000]
    mov rcx, 300
    call r9
    hlt
  `, setup);
  assertSame(remapped);
  assert.equal(remapped.jit.state.regs.r12, sum(0x11n));
  assert.equal(remapped.jit.state.regs.rbx, sum(0x11n) + sum(0x55n));
  const rewritten = await runBoth('long', `${start}
    mov byte [0x40001000], 0x66
    mov rcx, 300
    call r9
    hlt
  `, setup);
  assertSame(rewritten);
  assert.equal(rewritten.jit.state.regs.rbx, sum(0x11n) + sum(0x66n));
});

/** Calls the RET at 0x40001800 20 times, so that the page at 0x40001000 holds compiled code. */
const WARM_FAR = `
    mov rcx, 20
    mov rdx, 0x40001800
  warm:
    call rdx
    dec rcx
    jnz warm
`;

/**
 * A setup that maps `caller` at 0x40000000 and `far1` at 0x40001000 (`far2` in B2 for a remap), each
 * far page with a RET at +0x800 (WARM_FAR), then runs `tune`.
 */
async function twoPages(caller: string, far1: string, far2: string, tune?: Setup): Promise<Setup> {
  const farPage = (src: string) => assemble(`${src}\ntimes 0x800 - ($ - $$) nop\nret`, 64, 0x40001000);
  const [c, b1, b2] = await Promise.all([assemble(caller, 64, 0x40000000), farPage(far1), farPage(far2)]);
  return (s, m) => {
    mapAt1GiB(m, A, B1);
    m.mem.write(A, c);
    m.mem.write(B1, b1);
    m.mem.write(B2, b2);
    tune?.(s, m);
  };
}

/**
 * A loop on linear page 0x40000000 calls a function on page 0x40001000, which is then mapped to
 * another physical page, mapped back, and rewritten: each change must reach the loop's next call
 * though nothing compiled from the loop's page changed. `setup` tunes the JIT for the case.
 */
async function remappedCallee(setup?: Setup): Promise<{ jit: RunResult; interp: RunResult }> {
  const r = await runBoth('long', `
    ${WARM_FAR}
    mov r9, 0x40000000
    mov rcx, 200
    call r9
    mov r12, rbx
    mov qword [0x41008], ${B2} | 7
    invlpg [0x40001000]
    mov rcx, 200
    call r9
    mov r13, rbx
    mov qword [0x41008], ${B1} | 7
    mov rax, cr3
    mov cr3, rax
    mov rcx, 200
    call r9
    mov r14, rbx
    mov dword [0x40001001], 7
    mov rcx, 200
    call r9
    hlt
  `, await twoPages('loop:\ncall 0x40001000\nadd rbx, rax\ndec rcx\njnz loop\nret', 'mov eax, 1\nret', 'mov eax, 1000\nret', setup));
  assertSame(r);
  const regs = r.jit.state.regs;
  assert.equal(regs.r12, 200n);
  assert.equal(regs.r13, 200n + 200_000n, 'remapped with INVLPG: the other page\'s function');
  assert.equal(regs.r14, 200_200n + 200n, 'mapped back with MOV CR3: the first page\'s function again');
  assert.equal(regs.rbx, 200_400n + 1400n, 'rewritten: the new immediate');
  return r;
}

/** Blocks entered through the chain trampoline (counted when TSVM_SOFT_JIT_STATS is set as the JIT starts). */
function chained(r: RunResult): bigint {
  return (r.m.cpu as unknown as { core: { jitChained: { value: bigint } } }).core.jitChained.value;
}

test("JIT: the chain trampoline's jump cache follows a target on another page that is remapped (INVLPG, MOV CR3) or rewritten", { skip }, async () => {
  // the function compiled on its own at its first call: the loop reaches it through the
  // trampoline, whose jump cache remembers it
  const r = await remappedCallee();
  const view = (r.jit.m.cpu.jit as unknown as { view: DataView }).view;
  let cached = 0;
  for (let e = JIT_AREA.JUMP_CACHE; e < JIT_AREA.JUMP_CACHE + 4096 * 16; e += 16) if (view.getBigUint64(e, true) === 0x40001000n) cached++;
  assert.equal(cached, 1, 'one jump-cache entry for the function');
});

test('JIT: a call to a block on another page compiled along is direct, behind a guard on that page (remapped, rewritten)', { skip }, async () => {
  // blocks compiled after 10 runs: the function has run 9 times when the loop's block is, on a
  // page that holds compiled code (the RET called first), so it is compiled into the loop's module
  // and called directly while the fetch TLB maps its page as compiled; after the remap, the
  // mapping back and the rewrite the guard sends the calls to the trampoline
  const old = process.env.TSVM_SOFT_JIT_STATS;
  process.env.TSVM_SOFT_JIT_STATS = '1';
  try {
    const tuned = (siblingMinRuns: number): Setup => (_s, m) => { if (m.cpu.jit) { m.cpu.jit.tune(10, 0); m.cpu.jit.siblingMinRuns = siblingMinRuns; } };
    const along = await remappedCallee(tuned(2));
    assert.ok(along.jit.m.cpu.jit!.stats.siblings > 0, 'the function was compiled along with the loop');
    const apart = await remappedCallee(tuned(1e9));
    assert.equal(apart.jit.m.cpu.jit!.stats.siblings, 0);
    // 200 calls in the first round at least go direct instead of through the trampoline
    assert.ok(chained(along.jit) + 150n < chained(apart.jit), `through the trampoline: ${chained(along.jit)} with the function compiled along, ${chained(apart.jit)} without`);
  } finally {
    if (old === undefined) delete process.env.TSVM_SOFT_JIT_STATS;
    else process.env.TSVM_SOFT_JIT_STATS = old;
  }
});

test('JIT: data accesses that miss the TLB in a hot loop (present, not present, read-only, non-canonical, crossing a page, not RAM) match the interpreter, accessed and dirty flags included', { skip }, async () => {
  // Linear 0x40000000 + k * 0x1000 -> physical 0x60000 + k * 0x1000 for k < 8, with the accessed
  // and dirty flags clear; page 8 not present, page 9 read-only, page 10 outside RAM. The loop
  // touches a new page every few passes; at pass 300 it makes the access of the case.
  const setup: Setup = (_s, m) => {
    mapAt1GiB(m, ...Array.from({ length: 8 }, (_, k) => 0x60000 + k * 0x1000));
    m.mem.writeU64(0x41000 + 8 * 8, 0n);
    m.mem.writeU64(0x41000 + 9 * 8, 0x70000n | 5n);
    m.mem.writeU64(0x41000 + 10 * 8, 0xf0000000n | 7n);
  };
  const loop = (access: string) => `
    mov rcx, 400
    mov rsi, 0x40000000
  top:
    mov rax, rcx
    and eax, 0x1f
    shl eax, 9
    add rax, rsi
    mov rdx, [rax + 8]
    add rbx, rdx
    mov [rax + 0x2000 + 16], rcx
    cmp rcx, 100
    jne next
    ${access}
  next:
    dec rcx
    jnz top
    hlt`;
  const cases: Record<string, string> = {
    'every page present': 'nop',
    'not present': 'mov r8, [rsi + 0x8000]',
    'read-only (CR0.WP)': 'mov [rsi + 0x9000], rcx',
    'read-only, read': 'add r9, [rsi + 0x9008]',
    'non-canonical (bits 63:48 not copies of bit 47; the walk alone would map it)': 'mov r8, 0xffff000040000000\nmov r10, [r8]',
    'crossing a page': 'mov r10, [rsi + 0xffc]\nmov [rsi + 0x1ffa], r10',
    'not RAM': 'mov r10, [rsi + 0xa000]',
  };
  for (const [name, access] of Object.entries(cases)) {
    const r = await runBoth('long', loop(access), setup);
    assertSame(r);
    const ptes = (x: RunResult) => Array.from({ length: 11 }, (_, k) => x.m.mem.readU64(0x41000 + k * 8));
    assert.deepEqual(ptes(r.jit), ptes(r.interp), `${name}: accessed and dirty flags as the interpreter sets them`);
    assert.deepEqual(r.jit.m.mem.read(0x60000, 0x8000), r.interp.m.mem.read(0x60000, 0x8000), `${name}: memory`);
    assert.equal(r.jit.m.cpu.lastException?.vector, r.interp.m.cpu.lastException?.vector, name);
    assert.ok(r.jit.m.cpu.jit!.stats.blocks > 0, `${name}: blocks were compiled`);
  }
  const r = await runBoth('long', loop('nop'), setup);
  assert.deepEqual(r.jit.exit, { kind: 'hlt' });
  for (let k = 0; k < 2; k++) assert.equal(r.jit.m.mem.readU64(0x41000 + k * 8) & 0x60n, 0x20n, `page ${k}: accessed, not dirty`);
  for (let k = 2; k < 6; k++) assert.equal(r.jit.m.mem.readU64(0x41000 + k * 8) & 0x40n, 0x40n, `page ${k}: dirty`);
});

test('JIT: loads and stores that end at a page boundary or cross it (the TLB check compares the page of the last byte)', { skip }, async () => {
  // linear 0x40000000 and 0x40001000 map to physical pages that are not adjacent (DATA + 0x1000
  // and DATA), so an access that crossed the boundary through the first page's host address would
  // read or write the wrong bytes
  const mapSplit: Setup = (_s, m) => {
    mapAt1GiB(m, DATA + 0x1000, DATA);
    for (let i = 0; i < 0x2000; i += 8) m.mem.writeU64(DATA + i, 0x0123456789abcdefn * BigInt(i + 1));
  };
  let body = '';
  for (const [size, reg, offs] of [[8, 'rbx', [0xff8, 0xff9, 0xffc, 0xfff]], [4, 'ebx', [0xffc, 0xffd, 0xfff]], [2, 'bx', [0xffe, 0xfff]]] as const) {
    for (const off of offs) {
      body += `mov ${reg}, [r8 + ${off}]\nadd rax, rbx\nadd ${reg}, ${size}\nmov [r8 + ${off}], ${reg}\nadd ${size === 8 ? 'qword' : size === 4 ? 'dword' : 'word'} [r8 + ${off}], 3\n`;
    }
  }
  const r = await runBoth('long', `
    mov r8, 0x40000000
    mov rcx, 300
  top:
    ${body}
    dec rcx
    jnz top
    mov rdx, [r8 + 0xff8]
    mov rsi, [r8 + 0x1000]
    hlt
  `, mapSplit);
  assertSame(r, 0x2000);
  assert.ok(r.jit.m.cpu.jit!.stats.blocks > 0, 'compiled');
});

test('JIT: a page fault in the middle of a compiled block is precise', { skip }, async () => {
  // rdi walks through memory; the 61st iteration reads 1 GiB up, which is not mapped
  const src = `
    mov rdi, ${DATA}
    mov rcx, 0
  top:
    add rbx, 3
    inc rcx
    cmp rcx, 61
    jne .ok
    mov rdi, 0x40000000
  .ok:
    add rdx, rcx
    mov rax, [rdi]
    add rsi, rax
    mov [rdi + 8], rdx
    cmp rcx, 100
    jne top
    hlt
  `;
  const r = await runBoth('long', src);
  assertSame(r);
  const st = r.jit.state;
  assert.equal(st.regs.rip, stubRip(14), 'stopped in the #PF stub');
  assert.equal(st.cr2, 0x40000000n);
  assert.equal(st.regs.rbx, 61n * 3n, 'instructions before the faulting one retired');
  assert.equal(st.regs.rdx, (61n * 62n) / 2n);
  // the exception frame: error code, then RIP of the faulting MOV
  const frame = Number(st.regs.rsp);
  const m = r.jit.m.mem;
  assert.equal(m.readU64(frame), 0n, 'error code: read of a not-present page, supervisor');
  const code = m.read(Number(m.readU64(frame + 8)), 3);
  assert.deepEqual([...code], [0x48, 0x8b, 0x07], 'saved RIP is the faulting mov rax, [rdi]');

  // and a write fault (the store is the faulting instruction, earlier ones committed)
  const w = await runBoth('long', src.replace('mov rax, [rdi]', 'mov [rdi], rax'));
  assertSame(w);
  assert.equal(w.jit.state.cr2, 0x40000000n);
  assert.equal(w.jit.m.mem.readU64(Number(w.jit.state.regs.rsp)), 2n, 'error code: write');
});

test('JIT: a lookup that misses the fetch TLB fills it as the fetch would, page fault included', { skip }, async () => {
  // fn lives at linear 0x40000000 (physical 0x50000). It is called 40 times, with INVLPG before
  // each call from the 20th on, so that every later lookup of fn misses the fetch TLB and fills
  // it itself; then its page is unmapped, and the lookup's fill raises the #PF the fetch of fn's
  // first instruction would: CR2 and the saved RIP are fn, the error code an instruction fetch
  // (I/D, bit 4, with EFER.NXE) from a page not present, at CPL 0.
  const fn = await assemble('add rax, 7\nret', 64, 0x40000000);
  const setup: Setup = (_s, m) => {
    mapAt1GiB(m, 0x50000);
    m.mem.write(0x50000, fn);
    m.cpu.jit?.tune(3, 0);
  };
  const old = process.env.TSVM_SOFT_JIT_STATS;
  process.env.TSVM_SOFT_JIT_STATS = '1'; // jitInterpretedAfter counts only with the statistics on
  let r: Awaited<ReturnType<typeof runBoth>>;
  try {
    r = await runBoth('long', `
    mov r9, 0x40000000
    mov rcx, 40
  again:
    cmp rcx, 20
    ja .call
    invlpg [r9]
  .call:
    call r9
    dec rcx
    jnz again
    mov qword [0x41000], 0
    invlpg [r9]
    call r9
    hlt
  `, setup);
  } finally {
    if (old === undefined) delete process.env.TSVM_SOFT_JIT_STATS;
    else process.env.TSVM_SOFT_JIT_STATS = old;
  }
  assertSame(r);
  const st = r.jit.state;
  assert.equal(st.regs.rax, 40n * 7n);
  assert.equal(st.regs.rip, stubRip(14), 'stopped in the #PF stub');
  assert.equal(st.cr2, 0x40000000n);
  const frame = Number(st.regs.rsp);
  assert.equal(r.jit.m.mem.readU64(frame), 0x10n, 'error code: instruction fetch, not present, supervisor');
  assert.equal(r.jit.m.mem.readU64(frame + 8), 0x40000000n, 'saved RIP: fn');
  const core = (r.jit.m.cpu as unknown as { core: { jitTlbMiss: { value: bigint }; jitInterpretedAfter(why: number): number } }).core;
  assert.ok(core.jitTlbMiss.value >= 20n, `lookups that missed the fetch TLB: ${core.jitTlbMiss.value}`);
  const afterMiss = core.jitInterpretedAfter(1); // WHY_TLB_MISS (as/jit.ts)
  assert.ok(afterMiss < 5, `instructions interpreted because a lookup missed the fetch TLB: ${afterMiss}`);
});

test('JIT: blocks compiled at CPL 0 do not run at CPL 3 (supervisor-only page)', { skip }, async () => {
  // the same loop runs in ring 0, then in ring 3 where its data page is supervisor-only
  const r = await runBoth('long', `
    mov rcx, 100
    call work
    ; to ring 3 (the code and stack are user pages)
    mov rax, rsp
    push ${SEL.userData}
    push 0x70000
    pushf
    push ${SEL.user64}
    lea rbx, [rel user]
    push rbx
    iretq
  user:
    mov rcx, 100
    call work
    hlt
  work:
    mov rdx, [0x200000]
    add r8, rdx
    inc r9
    dec rcx
    jnz work
    ret
  `, (_s, m) => {
    // PD[1] (0x200000..0x3fffff): present, writable, supervisor only
    m.mem.writeU64(0x3000 + 8, 0x200000n | 0x83n);
  });
  assertSame(r);
  assert.equal(r.jit.state.regs.rip, stubRip(14), '#PF in ring 3');
  assert.equal(r.jit.state.cr2, 0x200000n);
  assert.equal(r.jit.state.regs.r9, 100n, 'ring 0 loop ran, ring 3 faulted on its first access');
});

test('JIT: run(n) retires exactly n instructions', { skip }, async () => {
  const r = await runAsm('long', `
    mov rcx, 100000
  top:
    add rax, 1
    add rbx, 2
    add rdx, 3
    dec rcx
    jnz top
    hlt
  `, (_s, m) => m.cpu.jit!.tune(1, 0), 1003);
  assert.deepEqual(r.exit, { kind: 'budget' });
  assert.equal(r.m.cpu.instructions, 1003);
  // 1 + 200 iterations x 5 + 2
  assert.equal(r.state.regs.rax, 201n);
  assert.equal(r.state.regs.rbx, 2n * 201n);
  assert.equal(r.state.regs.rdx, 3n * 200n);
  assert.equal(r.state.regs.rcx, 100000n - 200n);
  assert.ok(r.m.cpu.jit!.stats.blocks > 0);
});

test('JIT: a time slice (run(n, false)) ends before a compiled block longer than what is left instead of interpreting it', { skip }, async () => {
  // 31 instructions per iteration, one compiled block; the run ends exactly at `top`
  const r = await runAsm('long', `
    mov rcx, 100000
  top:
    times 29 add rax, 1
    dec rcx
    jnz top
    hlt
  `, (_s, m) => m.cpu.jit!.tune(1, 0), 1 + 31 * 3);
  assert.deepEqual(r.exit, { kind: 'budget' });
  const cpu = r.m.cpu;
  for (let i = 0; i < 20; i++) {
    const before = cpu.instructions;
    assert.deepEqual(cpu.run(40, false), { kind: 'budget' });
    // one iteration fits; the next (31) does not fit in the 9 left: no instruction of it runs
    assert.equal(cpu.instructions - before, 31, `slice ${i}`);
  }
  // exact runs still retire exactly what they are asked for (the block's tail interpreted)
  const before = cpu.instructions;
  cpu.run(40);
  assert.equal(cpu.instructions - before, 40);
  assert.equal(cpu.getState().regs.rax, 29n * (3n + 20n + 1n) + 9n);
});

test('JIT: branch targets compiled along with a hot block are tail-called directly, budget and all', { skip }, async () => {
  // 'odd' lies before 'top', so the branch to it leaves top's block (a forward branch would stay
  // inside: see the kept-branch tests); odd's block goes back to 'top' the same way
  const src = `
    mov rcx, 3000
    xor eax, eax
    mov rdx, 7
    jmp top
    times 16 nop ; (the interpreter looks up only branches longer than an instruction can be)
  odd:
    add rbx, 5
    test cl, 2
    jz join2
    sub rdx, 1
    times 16 nop
  join2:
    xor rdx, rcx
    jmp join
    times 16 nop
  top:
    test cl, 1
    jnz odd
    add rax, 3
  join:
    dec rcx
    jnz top
    hlt
  `;
  // blocks hot after 10 runs, compiled at once; 'odd' and 'join2' have run by then
  const setup: Setup = (_s, m) => { if (m.cpu.jit) { m.cpu.jit.tune(10, 0); m.cpu.jit.siblingMinRuns = 2; } };
  for (const budget of [2_000_000, 5003]) {
    const r = await runBoth('long', src, setup, budget);
    assertSame(r);
    assert.ok(r.jit.m.cpu.jit!.stats.siblings > 0, 'branch targets were compiled along');
  }
});

test('JIT: straight-line code longer than a block is compiled in full after a few calls, not a block\'s worth per few calls', { skip }, async () => {
  // A branch-free function of 400 instructions (about 7 blocks' worth: MAX_INSNS is 64) called 12
  // times, blocks hot after 3 runs. The run loop looks up straight-line code every 64
  // instructions, so every part of the function counts its runs from the first call and all of
  // it is compiled by the fourth. (Looked up at its entry only, the part after each compiled
  // block began counting when that block was compiled: one more block every three calls, and
  // ~3,000 instructions interpreted.)
  const src = `
    mov ecx, 12
  again:
    call fn
    dec ecx
    jnz again
    hlt
  fn:
    %rep 400
    add rax, 3
    %endrep
    ret
  `;
  const r = await runBoth('long', src, (_s, m) => { m.cpu.jit?.tune(3, 0); });
  assertSame(r);
  assert.equal(r.jit.state.regs.rax, BigInt(12 * 400 * 3));
  const core = (r.jit.m.cpu as unknown as { core: { jitInterpretedCount: () => number } }).core;
  const interpreted = core.jitInterpretedCount();
  assert.ok(interpreted < 1_700, `instructions interpreted: ${interpreted} (three calls' worth is 1,212)`);
});

test('JIT: code below 64-bit mode stays with the interpreter', { skip }, async () => {
  const r = await runBoth('prot32', `
    mov ecx, 100
  top:
    add eax, ecx
    dec ecx
    jnz top
    hlt
  `);
  assertSame(r);
  assert.equal(r.jit.m.cpu.jit!.stats.blocks, 0);
  assert.equal(r.jit.state.regs.rax, 5050n);
});

test('JIT: flags kept in locals reach the interpreter at side exits (a TLB miss right after a flag producer)', { skip }, async () => {
  // Every iteration touches a new page, so each load/store below misses the TLB and the block
  // hands the instruction to the interpreter while the previous instruction's flags are still in
  // the block's locals (compiler.ts Pend); ADC/SBB/SETC/INC then read them.
  const r = await runBoth('long', `
    mov rcx, 64
    mov rdx, 0x30000
    xor esi, esi
    xor edi, edi
    xor r12d, r12d
    mov rax, 0x7fffffffffffffc0
    mov r13, 0x9e3779b97f4a7c15
    mov r14, 0x8000000000000005
    xor r8d, r8d
  top:
    add rax, r13
    ror r14, 3 ; CF and OF patched over ADD's flags, still in locals: the load's side exit must store all
    mov rbx, [rdx]
    adc rsi, 0
    seto al
    add r8, rax
    sub rbx, rcx
    mov [rdx + 8], rbx
    sbb rdi, 0
    inc r9
    mov r10, [rdx + 16]
    setc r11b
    movzx r11d, r11b
    add r12, r11
    add rdx, 4096
    dec rcx
    jnz top
    hlt
  `);
  assertSame(r);
  assert.ok(r.jit.state.regs.rsi > 0n && r.jit.state.regs.rdi > 0n, 'the carries were seen (CF set by some ADD/SUB)');
});

/** A loop over a few blocks (a call, a same-page branch target, flags across blocks) that runs long. */
const LONG_LOOP = `
    mov rcx, 1000000000
    mov rdi, ${DATA}
    xor eax, eax
    mov rdx, 7
  top:
    test cl, 3
    jnz skip
    call bump
    times 16 nop
  skip:
    add rax, rcx
    xor rdx, rax
    rol rdx, 5
    mov [rdi + 8], rdx
    dec rcx
    jnz top
    hlt
  bump:
    add qword [rdi], 1
    ret
`;

test('JIT: blocks compiled on the compiler thread are installed between run slices and match the interpreter', { skip }, async () => {
  const TOTAL = 4_000_000;
  const jit = await runAsm('long', LONG_LOOP, (_s, m) => { m.cpu.jit!.mode = 'thread'; }, 1);
  const cpu = jit.m.cpu;
  try {
    // the CPU thread never waits for the compiler thread: it interprets until a batch comes back
    const deadline = Date.now() + 30_000;
    while (cpu.instructions < TOTAL) {
      cpu.run(Math.min(20_000, TOTAL - cpu.instructions));
      if (cpu.jit!.stats.blocks === 0) {
        assert.ok(Date.now() < deadline, 'the compiler thread answered within 30 s');
        await new Promise((r) => setTimeout(r, 1));
      }
    }
    assert.equal(cpu.jit!.mode, 'thread', 'still on the compiler thread');
    assert.ok(cpu.jit!.stats.blocks >= 2, `blocks compiled on the compiler thread (${cpu.jit!.stats.blocks})`);
    assert.ok(cpu.jit!.stats.threadMs > 0, 'the compiler thread did the work');
    const old = process.env.TSVM_SOFT_JIT;
    process.env.TSVM_SOFT_JIT = '0';
    try {
      const interp = await runAsm('long', LONG_LOOP, undefined, TOTAL);
      assertSame({ jit: { exit: interp.exit, state: cpu.getState(), m: jit.m }, interp });
    } finally {
      if (old === undefined) delete process.env.TSVM_SOFT_JIT;
      else process.env.TSVM_SOFT_JIT = old;
    }
  } finally {
    cpu.close();
  }
  assert.equal(cpu.jit!.mode, 'sync', 'closed: the thread is gone');
});

test('JIT: while the compiler thread is idle, a block is compiled at half the threshold', { skip }, async () => {
  // 700 runs of the loop: under a threshold of 1,000, but past the idle threshold of 500
  const src = `
    mov rcx, 700
  top:
    add rax, rcx
    dec rcx
    jnz top
    hlt
  `;
  const r = await runAsm('long', src, (_s, m) => { m.cpu.jit!.mode = 'thread'; m.cpu.jit!.tune(1000, 1); }, 1);
  const cpu = r.m.cpu;
  try {
    while (cpu.run(100).kind === 'budget');
    const deadline = Date.now() + 30_000;
    while (cpu.jit!.stats.blocks === 0 && Date.now() < deadline) {
      cpu.jit!.poll();
      await new Promise((res) => setTimeout(res, 1));
    }
    assert.ok(cpu.jit!.stats.blocks >= 1, `the loop compiled on the idle compiler thread (${cpu.jit!.stats.blocks} blocks)`);
  } finally {
    cpu.close();
  }
});

test('JIT: a compiler thread started ahead of the VM (while the kernel loads) is the one its JIT uses; one never used is stopped', { skip }, async () => {
  let early = -1;
  const jit = await runAsm('long', LONG_LOOP, (_s, m) => {
    early = prestartCompilerThread(wasmMemoryOf(m.mem)!);
    assert.equal(prestartCompilerThread(wasmMemoryOf(m.mem)!), early, 'one thread per VM');
    m.cpu.jit!.mode = 'thread';
  }, 1);
  const cpu = jit.m.cpu;
  try {
    assert.equal(cpu.jit!.threadId, -1, 'not taken before the first batch');
    const deadline = Date.now() + 30_000;
    while (cpu.jit!.stats.blocks === 0) {
      cpu.run(20_000);
      assert.ok(Date.now() < deadline, 'the compiler thread answered within 30 s');
      await new Promise((r) => setTimeout(r, 1));
    }
    assert.equal(cpu.jit!.threadId, early, 'the JIT took the thread started early');
  } finally {
    cpu.close();
  }
  // a thread started for a VM that never ran is stopped by dropPrestartedCompilerThread, and the
  // next one for that memory is a new thread
  const m2 = machine();
  const memory = wasmMemoryOf(m2.mem)!;
  const unused = prestartCompilerThread(memory);
  dropPrestartedCompilerThread(memory);
  const again = prestartCompilerThread(memory);
  assert.notEqual(again, unused);
  dropPrestartedCompilerThread(memory);
});

test("JIT: the host's reading of the block table (block-table.ts) agrees with the core's", { skip }, async () => {
  // never hot: every start stays counting, with its run count
  const r = await runAsm('long', LONG_LOOP, (_s, m) => { m.cpu.jit!.tune(1_000_000, 16); }, 300_000);
  const core = (r.m.cpu as unknown as { core: Record<string, unknown> }).core;
  const jitCount = core.jitCount as (rip: bigint, host: number, cpl: number) => number;
  const view = new DataView(r.m.mem.buffer);
  let counting = 0;
  for (let e = JIT_TABLE; e < JIT_TABLE + (1 << 15) * 32; e += 32) {
    const rip = view.getBigUint64(e + E_RIP, true);
    const host = view.getUint32(e + E_HOST, true);
    if (host === 0 || view.getInt32(e + E_FN, true) !== 0) continue;
    const cpl = view.getUint8(e + E_CPL);
    counting++;
    assert.equal(setOf(rip), JIT_TABLE + (((e - JIT_TABLE) >> 7) << 7), `entry ${e.toString(16)} is in the set setOf names`);
    assert.equal(countingRuns(view, rip, host, cpl), jitCount(rip, host, cpl), `runs of ${rip.toString(16)}`);
    assert.ok(countingRuns(view, rip, host, cpl) > 0);
  }
  assert.ok(counting >= 3, `counting entries found (${counting})`);
  assert.equal(countingRuns(view, 0x123456789n, 0x1000, 0), -1, 'a start the table does not hold');
});

test("JIT: the chain trampoline's lookup (jit.ts lookupBody) agrees with the core's jitLookup", { skip }, async () => {
  const r = await runAsm('long', LONG_LOOP, (_s, m) => { m.cpu.jit!.tune(20, 0); }, 300_000);
  const cpu = r.m.cpu;
  const core = (cpu as unknown as { core: Record<string, unknown> }).core;
  const jitLookup = core.jitLookup as (target: bigint, left: number) => number;
  const find = cpu.jit!.find;
  const view = new DataView(r.m.mem.buffer);
  const starts: bigint[] = [];
  const lefts = new Set([0, 3, 64, 20_000]);
  let compiled = 0;
  for (let e = JIT_TABLE; e < JIT_TABLE + (1 << 15) * 32; e += 32) {
    if (view.getUint32(e + E_HOST, true) === 0) continue;
    starts.push(view.getBigUint64(e + E_RIP, true));
    if (view.getInt32(e + E_FN, true) > 0) compiled++;
    const len = view.getUint8(e + E_LEN);
    lefts.add(len).add(len - 1); // budgets at the edge of each block's length
  }
  assert.ok(compiled >= 3, `compiled blocks in the table (${compiled})`);
  // table entries (compiled, counting), addresses next to them, one with no TLB entry
  const targets = [...starts, ...starts.map((t) => t + 1n), 0x7000_0000n];
  const compare = (what: string) => {
    let found = 0;
    for (const t of targets) {
      for (const left of lefts) {
        const want = jitLookup(t, left);
        assert.equal(find(t, left), want, `${what}: target ${t.toString(16)}, budget ${left}`);
        if (want > 0) found++;
      }
    }
    return found;
  };
  assert.ok(compare('as run') > 0, 'some lookups find a block');
  // a pending interrupt request: neither chains
  view.setInt32(STATE_BASE + O.INTR_REQUEST, 1, true);
  assert.equal(compare('interrupt request'), 0);
  view.setInt32(STATE_BASE + O.INTR_REQUEST, 0, true);
  // the code page written (an even generation): its blocks are stale for both
  let hostOfCompiled = -1;
  for (let e = JIT_TABLE; e < JIT_TABLE + (1 << 15) * 32 && hostOfCompiled < 0; e += 32) {
    if (view.getInt32(e + E_FN, true) > 0) hostOfCompiled = view.getUint32(e + E_HOST, true);
  }
  const before = compare('before the write');
  const g = JIT_GEN + (hostOfCompiled >>> 12) * 2;
  view.setUint16(g, view.getUint16(g, true) + 1, true);
  assert.ok(compare('page written') < before, 'fewer blocks found once their page is written');
});

test('JIT: when the compiler thread dies, compiling goes on in the CPU thread and blocks still match the interpreter', { skip }, async () => {
  const TOTAL = 3_000_000;
  const jit = await runAsm('long', LONG_LOOP, (_s, m) => { m.cpu.jit!.mode = 'thread'; m.cpu.jit!.tune(1_000_000, 1); }, 1);
  const cpu = jit.m.cpu;
  const soft = cpu.jit!;
  const errors: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  try {
    // nothing is hot yet (threshold 1,000,000): start the thread with a first batch by hand
    cpu.run(300_000);
    soft.tune(50, 1);
    const deadline = Date.now() + 30_000;
    while (!(soft as unknown as { worker: unknown }).worker) {
      cpu.run(20_000);
      assert.ok(Date.now() < deadline, 'a batch went to the compiler thread');
    }
    process.stderr.write = ((s: string) => { errors.push(String(s)); return true; }) as typeof process.stderr.write;
    const before = soft.stats.blocks;
    await (soft as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    while (soft.mode === 'thread') {
      await new Promise((r) => setTimeout(r, 1));
      assert.ok(Date.now() < deadline, "the thread's exit was noticed");
    }
    assert.equal(soft.mode, 'async');
    assert.match(errors.join(''), /compiler thread exited.*compiling on the CPU's thread instead/);
    while (cpu.instructions < TOTAL) {
      cpu.run(Math.min(20_000, TOTAL - cpu.instructions));
      await new Promise((r) => setImmediate(r)); // async mode installs from the event loop
    }
    assert.ok(soft.stats.blocks > before, `blocks compiled after the thread was gone (${before} -> ${soft.stats.blocks})`);
  } finally {
    process.stderr.write = write;
    cpu.close();
  }
  const old = process.env.TSVM_SOFT_JIT;
  process.env.TSVM_SOFT_JIT = '0';
  try {
    const interp = await runAsm('long', LONG_LOOP, undefined, TOTAL);
    assertSame({ jit: { exit: interp.exit, state: cpu.getState(), m: jit.m }, interp });
  } finally {
    if (old === undefined) delete process.env.TSVM_SOFT_JIT;
    else process.env.TSVM_SOFT_JIT = old;
  }
});

test('JIT: DIV, IDIV (32- and 64-bit, register and memory) and BSWAP match the interpreter, #DE included', { skip }, async () => {
  // entries of 72 bytes: DIV64 rdx rax d | IDIV64 rdx rax d | DIV32 edx eax d | IDIV32 edx eax d
  let seed = 0x9e3779b97f4a7c15n;
  const rnd = (): bigint => { seed = BigInt.asUintN(64, seed * 6364136223846793005n + 1442695040888963407n); return seed; };
  const u32 = (v: bigint) => BigInt.asUintN(32, v);
  const entries: bigint[][] = [];
  for (let i = 0; i < 40; i++) {
    const d64 = rnd() >> BigInt(i % 60) | 1n;
    const rax = rnd();
    // DIV64: a high half (RDX != 0, the interpreter's 128-bit division) every third entry, below the divisor
    const rdxDiv = i % 3 === 0 ? (rnd() % d64) : 0n;
    // IDIV64: RDX the sign of RAX, or (every fourth) a 128-bit dividend whose quotient still fits
    const ridx = BigInt.asIntN(64, rnd()) >> BigInt(i % 50);
    const sdiv = BigInt.asIntN(64, (rnd() >> BigInt(i % 40)) | 3n) * (i % 2 === 0 ? 1n : -1n);
    const rdxIdiv = i % 4 === 1 ? BigInt.asUintN(64, -1n) : BigInt.asUintN(64, ridx < 0n ? -1n : 0n);
    const raxIdiv = i % 4 === 1 ? BigInt.asUintN(64, rnd() >> 8n) : BigInt.asUintN(64, ridx);
    // DIV32 / IDIV32: quotients that fit
    const d32 = u32(rnd() >> BigInt(32 + (i % 28))) | 1n;
    const edx = i % 5 === 0 ? u32(rnd()) % d32 : 0n;
    const n32 = BigInt.asIntN(32, rnd()) >> BigInt(i % 20);
    const sd32 = BigInt.asIntN(32, (rnd() >> BigInt(40 + (i % 20))) | 1n) * (i % 3 === 0 ? -1n : 1n);
    entries.push([rdxDiv, rax, d64, rdxIdiv, raxIdiv, BigInt.asUintN(64, sdiv), edx | (rax << 32n), u32(d32), u32(n32 < 0n ? -1n : 0n) | (u32(n32) << 32n), u32(sd32)]);
  }
  const TABLE = DATA + 0x1000;
  const setup: Setup = (_s, m) => {
    entries.forEach((e, i) => {
      const p = TABLE + i * 72;
      m.mem.writeU64(p, e[0]!); m.mem.writeU64(p + 8, e[1]!); m.mem.writeU64(p + 16, e[2]!);
      m.mem.writeU64(p + 24, e[3]!); m.mem.writeU64(p + 32, e[4]!); m.mem.writeU64(p + 40, e[5]!);
      m.mem.writeU64(p + 48, e[6]!); m.mem.writeU32(p + 56, Number(e[7]!));
      m.mem.writeU64(p + 60, e[8]!); m.mem.writeU32(p + 68, Number(e[9]!));
    });
  };
  const r = await runBoth('long', `
    mov rcx, ${entries.length}
    mov r8, ${TABLE}
  top:
    mov rdx, [r8]
    mov rax, [r8 + 8]
    div qword [r8 + 16]
    add r10, rax
    add r11, rdx
    mov rdx, [r8 + 24]
    mov rax, [r8 + 32]
    mov rbx, [r8 + 40]
    idiv rbx
    add r12, rax
    add r13, rdx
    mov edx, [r8 + 48]
    mov eax, [r8 + 52]
    mov ebx, [r8 + 56]
    div ebx
    add r14, rax
    add r15, rdx
    mov edx, [r8 + 60]
    mov eax, [r8 + 64]
    idiv dword [r8 + 68]
    add r9, rax
    add rsi, rdx
    mov rax, [r8 + 8]
    bswap rax
    xor rdi, rax
    bswap eax
    add rdi, rax
    bswap r9d
    bswap r9
    add r8, 72
    dec rcx
    jnz top
    mov rax, 0x8000000000000000
    cqo
    mov rbx, -1
    idiv rbx ; INT64_MIN / -1: #DE
    hlt
  `, setup);
  assertSame(r);
  assert.equal(r.jit.exit.kind, 'hlt');
  assert.equal(r.jit.state.regs.rip, stubRip(0), '#DE delivered at the IDIV');
  assert.ok(r.jit.m.cpu.jit!.stats.blocks > 0);
  // #DE from inside a compiled block: a zero divisor, and quotients too large for 32 bits
  for (const [what, fault] of [
    ['DIV by zero', 'xor ebx, ebx\nmov eax, 5\nxor edx, edx\ndiv ebx'],
    ['DIV32 overflow', 'mov edx, 1\nxor eax, eax\nmov ebx, 1\ndiv ebx'],
    ['IDIV32 overflow', 'mov edx, 1\nxor eax, eax\nmov ebx, 1\nidiv ebx'],
    ['IDIV32 negative overflow', 'mov edx, -2\nxor eax, eax\nmov ebx, 1\nidiv ebx'],
  ]) {
    const z = await runBoth('long', `
      mov rcx, 50
    top:
      mov eax, ecx
      xor edx, edx
      mov ebx, 7
      div ebx
      add r10, rdx
      cmp rcx, 1
      jne next
      ${fault}
    next:
      dec rcx
      jnz top
      hlt
    `);
    assertSame(z);
    assert.equal(z.jit.state.regs.rip, stubRip(0), `#DE from ${what}`);
  }
});

test('JIT: LEAVE in hot functions matches the interpreter, with frames on pages the TLB has not seen', { skip }, async () => {
  const r = await runBoth('long', `
    mov rcx, 60
    mov r8, ${STACK}
  top:
    mov rsp, r8
    call f
    sub r8, 0x1000 - 8 ; a new stack page (and a new alignment) every call
    dec rcx
    jnz top
    hlt
  f:
    push rbp
    mov rbp, rsp
    sub rsp, 24
    mov [rbp - 8], rcx
    add rax, [rbp - 8]
    leave
    ret
  `);
  assertSame(r);
  assert.equal(r.jit.state.regs.rax, 1830n, 'sum of 60..1');
});

/**
 * Loops whose bodies branch forward to their own later instructions: the Jcc stays inside the
 * block (compiler.ts closeTargets). Each case joins paths whose flags differ in some way (the
 * same producer, different producers, one producer on one path only, a rotate's patched CF/OF,
 * ADC's run-time operation), then reads them (SETcc, ADC, a Jcc through the core) or side-exits
 * right at the join (a load from a page the TLB has not seen), so the interpreter must get the
 * flags of the path that was taken. Back edges leave the last pass's flags in the locals too
 * (compiler.ts backEdge, loopPend).
 */
/** Folds the bytes SETcc wrote to R8B..R13B into RBX (after the flags were read: it changes them). */
const FOLD_SETCC = `
    movzx r8d, r8b
    movzx r9d, r9b
    movzx r10d, r10b
    movzx r11d, r11b
    movzx r12d, r12b
    movzx r13d, r13b
    lea r8, [r8 + r9*2]
    lea r8, [r8 + r10*4]
    lea r8, [r8 + r11*8]
    shl r12, 4
    shl r13, 5
    or r8, r12
    or r8, r13
    rol rbx, 7
    xor rbx, r8`;

const KEPT_BRANCHES: Record<string, string> = {
  // joins of paths whose flags come from the same kind of operation at different sizes: CF and
  // ZF and the unsigned conditions inline (compiler.ts joinAt, size 0), S, L, LE through the core
  'a SUB of a byte or of a qword, every condition read at the join': `
    mov rcx, 300
    mov rdx, 0x123456789
  top:
    imul rax, rcx, 0x3b9aca07
    test cl, 1
    jz small
    cmp rax, rdx
    jmp join
  small:
    cmp cl, 0x97
  join:
    setb r8b
    setbe r9b
    sets r10b
    setl r11b
    setle r12b
    setz r13b
    adc rsi, 0
${FOLD_SETCC}
    dec rcx
    jnz top
    hlt`,
  'an ADD of a byte or of a qword, then DEC (which keeps CF) and ADC': `
    mov rcx, 300
    mov rdx, 0xfedcba9876543210
  top:
    imul rax, rcx, 0x3b9aca07
    test cl, 2
    jz small
    add rax, rdx
    jmp join
  small:
    add al, cl
  join:
    dec r15
    adc rsi, 0
    setb r8b
    seta r9b
    setz r10b
    sets r11b
    setg r12b
    setnz r13b
${FOLD_SETCC}
    dec rcx
    jnz top
    hlt`,
  'a TEST of a byte or an AND of a qword, then DEC and ADC': `
    mov rcx, 300
    mov rdx, 0x0f0f0f0f0f0f0f0f
  top:
    imul rax, rcx, 0x3b9aca07
    test cl, 4
    jz small
    and rax, rdx
    jmp join
  small:
    test cl, 0x81
  join:
    dec r15
    adc rsi, 7
    setb r8b
    setbe r9b
    setz r10b
    sets r11b
    setl r12b
    setle r13b
${FOLD_SETCC}
    dec rcx
    jnz top
    hlt`,
  'if-then, same producer on both paths': `
    mov rcx, 300
  top:
    test cl, 1
    jz skip
    add rax, rcx
  skip:
    dec rcx
    jnz top
    hlt`,
  'different producers, flags read at the join': `
    mov rcx, 300
  top:
    test cl, 3
    jz skip
    add rax, rcx
    xor rax, 0x55
    sub rbx, rax
  skip:
    setz dl
    adc rsi, rdx
    seto dil
    add r8, rdi
    dec rcx
    jnz top
    hlt`,
  'a side exit at the join (new page each pass)': `
    mov rcx, 64
    mov r9, 0x30000
  top:
    cmp cl, 17
    jb skip
    add rax, rcx
    shl rax, 3
  skip:
    mov rbx, [r9]
    adc rsi, 0
    setc dl
    add r10, rdx
    add r9, 4096
    dec rcx
    jnz top
    hlt`,
  'rotate and ADC on one path, two branches to one target, nested targets': `
    mov rcx, 400
    mov r14, 0x8000000000000005
  top:
    test cl, 1
    jnz mid
    ror r14, 3
    test cl, 2
    jz end
    adc rax, rcx
  mid:
    bt rcx, 2
    jc end
    sbb rbx, 7
    shr rbx, 2
  end:
    jo ovf
    adc rdx, 0
  ovf:
    sete r11b
    add r12, r11
    dec rcx
    jnz top
    hlt`,
  'flags carried around the back edge (ADC at the head reads the CF an ADD left under DEC)': `
    mov rcx, 300
    mov r13, 0x9e3779b97f4a7c15
  top:
    adc rax, 0
    setc dl
    add r8, rdx
    test cl, 4
    jz low
    add r9, rcx
  low:
    add rbx, r13
    dec rcx
    jnz top
    hlt`,
  'if-else inside a loop (both arms and the code after a JMP stay in the block)': `
    mov rcx, 300
  top:
    test cl, 1
    jz even
    add rax, rcx
    jmp join
  even:
    sub rbx, rcx
    test cl, 2
    jnz join
    xor rdx, rax
  join:
    adc rsi, 0
    dec rcx
    jnz top
    hlt`,
  'a branch out of the loop to the end of the block (a HLT it cannot compile)': `
    mov rcx, 200
  top:
    add rax, rcx
    cmp rax, 15000
    ja out
    dec rcx
    jnz top
  out:
    hlt`,
};

/** Forward branches whose target the block does not reach as an instruction: they leave it. */
const UNREACHED_TARGETS: Record<string, string> = {
  'into the middle of an instruction (its immediate decodes as NOPs)': `
    mov rcx, 300
  top:
    test cl, 1
    jz movimm + 1
  movimm:
    mov eax, 0x90909090
    setz dl
    add r8, rdx
    add rbx, rax
    dec rcx
    jnz top
    hlt`,
  'past the 64 instructions a block holds': `
    mov rcx, 300
  top:
    test cl, 3
    jnz beyond
    times 70 add rax, 1
  beyond:
    setnz dl
    add r8, rdx
    add rbx, rcx
    dec rcx
    jnz top
    hlt`,
};

test('JIT: forward branches to targets a block does not reach leave it, and match the interpreter', { skip }, async () => {
  for (const [name, src] of Object.entries(UNREACHED_TARGETS)) {
    for (const budget of [2_000_000, 777]) {
      const r = await runBoth('long', src, undefined, budget);
      assertSame(r);
      assert.ok(r.jit.m.cpu.jit!.stats.blocks > 0, `${name}: compiled`);
    }
  }
});

test('JIT: forward branches kept inside loops, and flags kept around back edges, match the interpreter (registers, flags at the join, side exits, counts)', { skip }, async () => {
  for (const [name, src] of Object.entries(KEPT_BRANCHES)) {
    const setup: Setup = (_s, m) => {
      for (let p = 0; p < 80; p++) m.mem.writeU64(0x30000 + p * 4096, BigInt(p * 0x1234567 + 3));
    };
    const r = await runBoth('long', src, setup);
    assertSame(r);
    assert.deepEqual(r.jit.exit, { kind: 'hlt' }, `${name}: ran to its HLT`);
    assert.ok(r.jit.m.cpu.jit!.stats.kept > 0, `${name}: a branch stayed inside the loop (${r.jit.m.cpu.jit!.stats.kept})`);
    // and with budgets that end the run in the middle of passes that skipped instructions
    for (const budget of [57, 333, 1001]) {
      const b = await runBoth('long', src, setup, budget);
      assertSame(b);
      if (budget < 500 || b.jit.exit.kind === 'budget') assert.equal(b.jit.m.cpu.instructions, budget, `${name}: run(${budget}) retired exactly ${budget}`);
    }
  }
});

test('JIT: a branch to a same-page target that cannot be compiled returns to the core at the target', { skip }, async () => {
  // 'odd' starts with CPUID, which the compiler refuses: the sibling compiled along for it is a
  // stub (batch.ts) that returns to the core's loop at once, which must go on at 'odd' with the
  // state the block left.
  const src = `
    mov r8, 3000
    xor esi, esi
    xor ebx, ebx
    jmp top
    times 16 nop
  odd:
    cpuid
    add rsi, rbx
    jmp join
    times 16 nop
  top:
    xor eax, eax
    test r8b, 1
    jnz odd
    add rsi, 3
  join:
    dec r8
    jnz top
    hlt
  `;
  const setup: Setup = (_s, m) => { if (m.cpu.jit) { m.cpu.jit.tune(10, 0); m.cpu.jit.siblingMinRuns = 2; } };
  const r = await runBoth('long', src, setup);
  assertSame(r);
  assert.ok(r.jit.m.cpu.jit!.stats.refused > 0, 'the target starting with CPUID was refused');
});

test('JIT: REP MOVS and REP STOS are compiled through the core and match the interpreter (sizes, page crossings, RCX 0, DF set, an FS source, an overlapping copy, TLB misses, a page fault part-way)', { skip }, async () => {
  // Linear 0x40000000 -> physical 0x60000 (the first-touch cases); 0x40001000 not present.
  const setup: Setup = (_s, m) => {
    mapAt1GiB(m, 0x60000);
    m.mem.writeU64(0x41000 + 8, 0n);
  };
  // Every pass fills and copies regions of DATA that move with the pass (some cross DATA + 0x1000),
  // with each size and RCX 0; at pass 100 it runs the case.
  const loop = (access: string) => `
    mov ecx, 0xc0000100          ; IA32_FS_BASE = 0x1000
    mov eax, 0x1000
    xor edx, edx
    wrmsr
    mov r12, 300
  top:
    mov rdi, r12
    and edi, 0x1f8
    add rdi, ${DATA + 0xf00}
    mov rax, r12
    imul rax, rax, 0x01010101
    mov rcx, 5
    rep stosq
    mov rcx, 13
    rep stosb
    mov rsi, rdi
    sub rsi, 53
    mov rdi, r12
    and edi, 0x3f
    add rdi, ${DATA + 0x2000}
    mov rcx, 53
    rep movsb
    mov rsi, rdi
    sub rsi, 50
    mov rdi, ${DATA + 0x2100}
    mov rcx, 7
    rep movsw
    mov rcx, 3
    rep movsd
    mov rcx, 2
    rep movsq
    xor ecx, ecx
    rep stosq
    rep movsb
    add r13, rdi
    add r14, rsi
    cmp r12, 100
    jne next
    ${access}
  next:
    dec r12
    jnz top
    hlt`;
  const cases: Record<string, string> = {
    'no case': 'nop',
    'DF set (the interpreter copies backwards)': `std
    mov rsi, ${DATA + 0x2040}
    mov rdi, ${DATA + 0x2300}
    mov rcx, 9
    rep movsb
    cld`,
    'a source with an FS override (FS:DATA + 0x20 is DATA + 0x1020)': `mov rsi, ${DATA + 0x20}
    mov rdi, ${DATA + 0x2400}
    mov rcx, 24
    db 0x64, 0xf3, 0xa4          ; fs rep movsb`,
    'an overlapping copy (a destination just above the source repeats it)': `mov rsi, ${DATA + 0xf08}
    lea rdi, [rsi + 3]
    mov rcx, 40
    rep movsb`,
    'a page the TLB has not seen': `mov rdi, 0x40000100
    mov rcx, 100
    rep stosq
    mov rsi, 0x40000100
    mov rdi, ${DATA + 0x2500}
    mov rcx, 64
    rep movsq`,
    'a non-canonical destination (#GP)': `mov rdi, 0xffff000000000000
    mov rcx, 8
    rep stosb`,
    'a page fault part-way (RCX, RDI and CR2 at the first byte not written)': `mov rdi, 0x40000ff0
    mov al, 0x5a
    mov rcx, 64
    rep stosb`,
  };
  for (const [name, access] of Object.entries(cases)) {
    const r = await runBoth('long', loop(access), setup);
    assertSame(r, 0x3000);
    assert.deepEqual(r.jit.m.mem.read(0x60000, 0x1000), r.interp.m.mem.read(0x60000, 0x1000), `${name}: memory`);
    assert.equal(r.jit.m.cpu.lastException?.vector, r.interp.m.cpu.lastException?.vector, name);
    const core = (r.jit.m.cpu as unknown as { core: { jitInterpretedCount: () => number } }).core;
    const interpreted = core.jitInterpretedCount();
    assert.ok(interpreted < 150, `${name}: instructions interpreted: ${interpreted} (300 passes of 9 REP instructions)`);
  }
  const fault = await runBoth('long', loop(cases['a page fault part-way (RCX, RDI and CR2 at the first byte not written)']!), setup);
  assert.equal(fault.jit.state.cr2, 0x40001000n);
  assert.equal(fault.jit.state.regs.rcx, 48n, '16 bytes stored, 48 left');
  assert.equal(fault.jit.m.mem.read(0x60ff0, 16).every((x) => x === 0x5a), true);
});

test('JIT: SYSCALL and SYSRET compiled match the interpreter (a system call loop from ring 3)', { skip }, async () => {
  // Blocks that start with SYSCALL, that end with SYSRET, and one whose SYSCALL follows an ADD (its
  // flags still pending in the block: R11 must have them). A second SYSRET to a non-canonical
  // RCX faults (#GP) in the interpreter after the block's side exit.
  const src = `
    ${SYSCALL_MSRS}
    ${TO_USER64}
  user:
    mov r8, 300
    jmp again
    times 16 nop
  again:
    syscall
    add rbx, r8
    syscall
    dec r8
    jnz again
    mov r9, 1                ; the kernel side makes its SYSRET fault now
    syscall
    hlt
    times 16 nop
  entry:
    add rdi, rcx
    add rsi, r11
    test r9, r9
    jnz bad
    jmp back
    times 16 nop
  back:
    nop                      ; (in the block: a fault inside it would lose its count)
    o64 sysret
    times 16 nop
  bad:
    mov rcx, 0x8000000000000000
    jmp back
  `;
  const r = await runBoth('long', src, (_s, m) => { m.cpu.jit?.tune(3, 0); });
  assertSame(r);
  assert.equal(r.jit.m.cpu.lastException?.vector, 13, 'SYSRET to a non-canonical RCX raises #GP');
  assert.equal(r.jit.state.regs.rcx, 0x8000000000000000n);
  assert.ok(compiledStartingWith(r.jit, [0x0f, 0x05]) >= 1, 'a block starting with SYSCALL was compiled');
  assert.ok(compiledStartingWith(r.jit, [0x90, 0x48, 0x0f, 0x07]) >= 1, 'a block with SYSRET was compiled');
});

test('JIT: a loop block (registers in locals) that leaves for a block on another page compiled along checks that page too', { skip }, async () => {
  // 'top' loops inside its block (registers in wasm locals); its exit jumps to 'far' on the next
  // linear page, compiled along and called from the block's epilogue behind the page's guard.
  // Then that page is remapped to another physical page whose 'far' adds 1000 instead of 100.
  const setup = await twoPages('mov rcx, 5\ntop:\nadd rbx, 1\ndec rcx\njnz top\njmp 0x40001000', 'add rbx, 100\nret', 'add rbx, 1000\nret',
    (_s, m) => { if (m.cpu.jit) { m.cpu.jit.tune(10, 0); m.cpu.jit.siblingMinRuns = 1; } });
  const r = await runBoth('long', `
    ${WARM_FAR}
    mov r9, 0x40000000
    mov r8, 30
  again:
    call r9
    dec r8
    jnz again
    mov r12, rbx
    mov qword [0x41008], ${B2} | 7
    invlpg [0x40001000]
    mov r8, 30
  again2:
    call r9
    dec r8
    jnz again2
    hlt
  `, setup);
  assertSame(r);
  assert.equal(r.jit.state.regs.r12, 30n * 105n);
  assert.equal(r.jit.state.regs.rbx, 30n * 105n + 30n * 1005n, 'after the remap: the other page\'s code');
  assert.ok(r.jit.m.cpu.jit!.stats.siblings > 0, 'branch targets were compiled along');
});
