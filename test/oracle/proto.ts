import { buildImage, makePool } from './image.js';
import { runImage } from './vm-run.js';
import * as L from './layout.js';
import type { OracleCase } from './case.js';
const mk = (lines: string[], regs: Partial<Record<number, bigint>> = {}): OracleCase => {
  const r: bigint[] = []; for (let i = 0; i < 16; i++) r.push(regs[i] ?? BigInt(i * 0x1111));
  r[4] = BigInt(L.STACK_INIT);
  return { family: 'p', name: lines.join(';'), lines: lines.map((text) => ({ text, undefBefore: 0 })), regs: r, rflags: 0x2n | 0x1n, poolOffset: 0x800, undefEnd: 0 };
};
const n = Number(process.argv[2] ?? 4);
const base = [
  mk(['add eax, ebx']),
  mk(['div rcx'], { 1: 0n }),
  mk(['mov rax, [0x1f6000]']),
  mk(['push rax', 'push rbx', 'pop rcx']),
  mk(['int3']),
  mk(['int 0x81', 'mov eax, 7']),
  mk(['int 0x40']),
  mk(['mov rsi, 0x1f5e00', 'mov rdi, 0x1f5f00', 'mov ecx, 4', 'rep movsq']),
];
const cases: OracleCase[] = [];
for (let i = 0; i < n; i++) cases.push(base[i % base.length]);
const t0 = performance.now();
const img = await buildImage(cases, makePool(1));
console.log('build', (performance.now() - t0).toFixed(0), 'ms', img.bytes.length, img.memoryBytes, img.harness);
const r = await runImage(img, (process.argv[3] ?? 'kvm') as 'kvm', { timeoutMs: 60000 });
console.log(r.outcome, r.exit, r.wallMs.toFixed(1), 'ms', r.log);
const dv = new DataView(r.results.buffer);
for (let i = 0; i < Math.min(n, 9); i++) {
  const o = i * L.RESULT_SIZE;
  const q = (k: number) => dv.getBigUint64(o + k, true).toString(16);
  console.log(i, 'rax', q(0), 'rcx', q(8), 'rsp', q(32), 'fl', q(128), 'vec', q(136), 'err', q(144), 'cr2', q(152), 'rip', q(160), 'mk', q(168));
}
const cv = new DataView(r.control.buffer);
console.log('index', cv.getBigUint64(0, true), 'faults', cv.getBigUint64(0x40, true));
const pv = new DataView(r.panic.buffer); console.log('panic vec', pv.getBigUint64(136, true).toString(16), 'rip', pv.getBigUint64(160,true).toString(16));
