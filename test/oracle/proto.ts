import { buildImage } from './image.js';
import { runImage } from './vm-run.js';
import { generateCases } from './generate.js';
import * as L from './layout.js';
const nrand = Number(process.argv[2] ?? 100);
let t0 = performance.now();
const gen = generateCases({ seed: 1, random: nrand });
const fams = new Map<string, number>();
for (const c of gen.cases) fams.set(c.family, (fams.get(c.family) ?? 0) + 1);
console.log('generate', (performance.now() - t0).toFixed(0), 'ms', gen.cases.length, [...fams].map(([k, v]) => `${k}:${v}`).join(' '));
t0 = performance.now();
const img = await buildImage(gen.cases, gen.pool);
console.log('build', (performance.now() - t0).toFixed(0), 'ms', img.bytes.length, img.memoryBytes);
const r = await runImage(img, 'kvm', { timeoutMs: 60000 });
console.log(r.outcome, r.exit.message, r.wallMs.toFixed(1), 'ms');
const r2 = await runImage(img, 'kvm', { timeoutMs: 60000 });
console.log(r2.outcome, r2.wallMs.toFixed(1), 'ms');
let diff = 0;
for (let i = 0; i < gen.cases.length; i++) {
  const a = r.results.subarray(i * L.RESULT_SIZE, (i + 1) * L.RESULT_SIZE), b = r2.results.subarray(i * L.RESULT_SIZE, (i + 1) * L.RESULT_SIZE);
  if (Buffer.compare(a, b) !== 0) { diff++; if (diff < 5) console.log('diff case', i, gen.cases[i].name); }
}
console.log('diffs', diff);
const cv = new DataView(r.control.buffer);
console.log('index', cv.getBigUint64(0, true), 'faults', cv.getBigUint64(0x40, true));
if (r.outcome === 'panic') { const pv = new DataView(r.panic.buffer); console.log('panic vec', pv.getBigUint64(136, true).toString(16), 'rip', pv.getBigUint64(160,true).toString(16), 'err', pv.getBigUint64(144,true).toString(16)); }
