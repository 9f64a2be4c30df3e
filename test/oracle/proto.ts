import { runOracle, formatReport } from './run.js';
import { makePool } from './image.js';
import * as L from './layout.js';
const nrand = Number(process.argv[2] ?? 100);
const b = (process.argv[3] ?? 'kvm') as 'kvm' | 'soft';
const tamper = process.argv[4] === 'tamper';
const r = await runOracle({ seed: 1, random: nrand, accelA: 'kvm', accelB: b, timeoutMs: 60000,
  tamper: tamper ? (_a, bb) => { bb.results[5 * L.RESULT_SIZE + 8] ^= 1; bb.results[100 * L.RESULT_SIZE + 128] ^= 0x41; bb.results[7000 * L.RESULT_SIZE + 192 + 0x250] ^= 0xff; bb.results[6950 * L.RESULT_SIZE + 136] = 0x0d; } : undefined });
console.log(formatReport(r, { limit: 10, pool: makePool(1), reproduce: (i) => `npm run fuzz:cpu -- --seed 1 --only ${i}` }));
console.log('generate', r.generateMs.toFixed(0), 'build', r.buildMs.toFixed(0));
