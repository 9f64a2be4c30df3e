// Micro-benchmark of the software CPU on small 64-bit loops: interpreter (TSVM_SOFT_JIT=0) vs JIT.
// Prints M guest instructions per second and ns per loop iteration (= per dispatched block).
// Usage: node dist/bench/soft-loop.js [iterations]
import { assemble, machine, stateFor, writeTables, CODE, DATA } from '../test/soft/harness.js';

const LOOPS: Record<string, string> = {
  'tiny (3 insns)': 'top:\nadd rax, 1\ndec rcx\njnz top\nhlt',
  'memory (8 insns)': `mov rsi, ${DATA}\ntop:\nmov rax, [rsi]\nadd rax, rcx\nmov [rsi+8], rax\nxor rdx, rax\nshr rdx, 3\nadd rbx, rdx\ndec rcx\njnz top\nhlt`,
  'dispatch (2 blocks on 2 pages)': 'a:\nadd rax, 1\njmp b\ntimes 0x1000 - ($ - $$) db 0x90\nb:\ndec rcx\njnz a\nhlt',
  'calls (7 insns)': 'top:\ncall f\ndec rcx\njnz top\nhlt\nf:\npush rbx\nmov rbx, rcx\nadd rax, rbx\npop rbx\nret',
};

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 5_000_000);
  for (const [name, src] of Object.entries(LOOPS)) {
    const code = await assemble(src, 64, CODE);
    for (const jit of [false, true]) {
      process.env.TSVM_SOFT_JIT = jit ? '1' : '0';
      const m = machine();
      if (m.cpu.jit) m.cpu.jit.async = false; // nothing here runs the event loop
      writeTables(m.mem);
      m.mem.write(CODE, code);
      const s = stateFor('long');
      s.regs.rcx = BigInt(n);
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
