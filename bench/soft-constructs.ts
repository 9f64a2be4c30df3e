// `npm run bench:constructs`: the software CPU's time per pass of small loops, one per code shape
// (guests/bench/constructs.asm: a tight loop, memory, a branch inside a loop, near and far calls,
// an indirect call, jumps between pages, a bignum inner loop called for 8 limbs, a 64-byte REP MOVSB
// memcpy), next to QEMU TCG
// running the same images as its -bios, in the same run. Where bench:cpu gives one throughput,
// this shows which shapes are slower than QEMU's and by how much: what the boot's time is made
// of besides straight-line code (docs/soft-cpu-strategy.md). Each image runs with its passes and
// with none; the difference of the median wall times over the passes is the time per pass.
// Env: BENCH_ITERATIONS (default per case, ~1-2 s of a run: enough for V8 to have tiered the
// loop up), BENCH_REPS (default 3), BENCH_CASES (a comma-separated subset).
import { loopImage, loopSeconds, qemu, qemuRun, timed, tsvmRun } from './firmware-loop.js';

/** The cases and their default number of passes. */
const PASSES = { tiny: 300e6, memory: 300e6, ifthen: 300e6, calls: 100e6, farcall: 100e6, indirect: 100e6, dispatch: 100e6, bignum: 20e6, memcpy: 50e6 } as const;
const CASES = Object.keys(PASSES) as (keyof typeof PASSES)[];
const REPS = Number(process.env.BENCH_REPS ?? 3);
const selected = process.env.BENCH_CASES ? process.env.BENCH_CASES.split(',') : [...CASES];
const log = (s: string) => process.stderr.write(`bench:constructs: ${s}\n`);
for (const c of selected) {
  if (!(CASES as readonly string[]).includes(c)) throw new Error(`BENCH_CASES: unknown case "${c}" (known: ${CASES.join(', ')})`);
}
const passes = (name: string) => Number(process.env.BENCH_ITERATIONS ?? PASSES[name as keyof typeof PASSES]);
if (!qemu) log('QEMU is not installed (Debian package qemu-system-x86): printing tsvm alone');

const rows: { name: string; n: number; tsvm: number; qemu?: number }[] = [];
for (const name of selected) {
  const n = passes(name);
  const image = await loopImage('constructs.asm', `constructs-${name}`, [`-DCASE_${name}`]);
  const full = image(n);
  const empty = image(0);
  const ns = (loopSeconds((img) => timed(tsvmRun(img), img, 'tsvm'), full, empty, REPS) * 1e9) / n;
  const q = qemu ? (loopSeconds((img) => timed(qemuRun(img), img, 'QEMU TCG'), full, empty, REPS) * 1e9) / n : undefined;
  log(`${name}: tsvm ${ns.toFixed(1)} ns${q !== undefined ? `, QEMU ${q.toFixed(1)} ns` : ''} per pass`);
  rows.push({ name, n, tsvm: ns, qemu: q });
}

console.log(`Time per pass of small loops (guests/bench/constructs.asm), median of ${REPS}`);
console.log(`${'case'.padEnd(10)} ${'passes'.padStart(6)} ${'tsvm soft'.padStart(12)} ${'QEMU TCG'.padStart(12)}  tsvm / QEMU`);
for (const r of rows) {
  const q = r.qemu !== undefined ? `${r.qemu.toFixed(1).padStart(9)} ns` : '           -';
  const ratio = r.qemu !== undefined ? `  ${(r.tsvm / r.qemu).toFixed(2)}x` : '';
  console.log(`${r.name.padEnd(10)} ${`${r.n / 1e6}M`.padStart(6)} ${r.tsvm.toFixed(1).padStart(9)} ns ${q}${ratio}`);
}
