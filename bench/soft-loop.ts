// Micro-benchmark of the software CPU on small 64-bit loops: interpreter (TSVM_SOFT_JIT=0) vs JIT.
// Prints M guest instructions per second and ns per loop iteration (= per dispatched block).
// Usage: node dist/bench/soft-loop.js [iterations]
import { assemble, machine, stateFor, writeTables, CODE, DATA } from '../test/soft/harness.js';

const LOOPS: Record<string, string> = {
  'tiny (3 insns)': 'top:\nadd rax, 1\ndec rcx\njnz top\nhlt',
  'memory (8 insns)': `mov rsi, ${DATA}\ntop:\nmov rax, [rsi]\nadd rax, rcx\nmov [rsi+8], rax\nxor rdx, rax\nshr rdx, 3\nadd rbx, rdx\ndec rcx\njnz top\nhlt`,
  'dispatch (2 blocks on 2 pages)': 'a:\nadd rax, 1\njmp b\ntimes 0x1000 - ($ - $$) db 0x90\nb:\ndec rcx\njnz a\nhlt',
  // Linux's mpihelp_submul_1 inner loop (bignum multiply-subtract, 32-bit halves, 29 insns): ALU
  // and flags heavy, what the kernel runs to check its certificates' RSA signatures at boot
  'bignum (29 insns)': `mov rbx, ${DATA}\nmov r9, 0x12345678\nmov r10, 0x9abcdef0\nmov rbp, 0x100000000\nxor esi, esi\n` +
    'top:\nxor eax, eax\nmov rcx, [rbx+rax*8]\nlea rdi, [rax*8]\nmov rdx, rcx\nmov ecx, ecx\nshr rdx, 32\nmov rax, rcx\nimul rax, r9\nmov r13, rdx\nimul r13, r9\n' +
    'imul rcx, r10\nimul rdx, r10\nmov r14, rax\nmov eax, eax\nshr r14, 32\nadd rcx, r13\nadd rcx, r14\nmov r14, rdx\nadd rdx, rbp\ncmp rcx, r13\nmov r13, rcx\ncmovae rdx, r14\n' +
    'add rax, rsi\nshl r13, 32\nadd rax, r13\ncmp rax, rsi\nsetb sil\nadd rdi, rbx\nshr rcx, 32\nmov r13, [rdi]\nmovzx esi, sil\nsub r13, rax\nadc rsi, rcx\nmov [rdi], r13\nadd rsi, rdx\ndec rcx\n' +
    'mov rcx, r15\ndec r15\njnz top\nhlt',
  'calls (7 insns)': 'top:\ncall f\ndec rcx\njnz top\nhlt\nf:\npush rbx\nmov rbx, rcx\nadd rax, rbx\npop rbx\nret',
  // a loop with an if-then inside (half the iterations skip it): the Jcc over the then-part stays
  // inside the block
  'if-then (6 insns)': 'top:\ntest cl, 1\njz skip\nadd rax, rcx\nxor rax, 5\nskip:\ndec rcx\njnz top\nhlt',
};

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 5_000_000);
  for (const [name, src] of Object.entries(LOOPS)) {
    const code = await assemble(src, 64, CODE);
    for (const jit of [false, true]) {
      process.env.TSVM_SOFT_JIT = jit ? '1' : '0';
      const m = machine();
      if (m.cpu.jit) m.cpu.jit.mode = 'sync'; // compile on this thread at once: the loop, not the compile latency, is measured
      writeTables(m.mem);
      m.mem.write(CODE, code);
      const s = stateFor('long');
      s.regs.rcx = BigInt(n);
      s.regs.r15 = BigInt(n);
      m.cpu.setState(s);
      const t0 = performance.now();
      const exit = m.cpu.run(1e12);
      const ms = performance.now() - t0;
      const insns = m.cpu.instructions;
      process.stdout.write(`${name.padEnd(18)} ${jit ? 'JIT   ' : 'interp'} ${(insns / ms / 1000).toFixed(1).padStart(7)} M insn/s  ${((ms * 1e6) / n).toFixed(1).padStart(6)} ns/iteration  (${exit.kind})\n`);
    }
  }
}

await main();
