// `npm run bench:cpu`: guest instructions per second of the software CPU on a fixed integer
// workload (guests/bench/cpu-loop.asm: a 10-instruction long-mode loop of ALU, load/store,
// rotate/shift and branch), next to QEMU TCG running the same image as its -bios, in the same run.
// Each side runs the image with ITERATIONS and with 0 iterations; the difference of the median wall
// times is the loop's time (process start, VM creation and mode switches cancel out).
// Env: BENCH_ITERATIONS (default 50,000,000), BENCH_REPS (default 3).
import { loopImage, loopSeconds, qemu, qemuRun, timed, tsvmRun } from './firmware-loop.js';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 50_000_000);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const log = (s: string) => process.stderr.write(`bench:cpu: ${s}\n`);

const image = await loopImage('cpu-loop.asm', 'cpu-loop');

function measure(name: string, run: (img: string) => number): { name: string; mips: number; seconds: number } {
  const seconds = loopSeconds(run, image(ITERATIONS), image(0), REPS, (i, withLoop, without) =>
    log(`${name}: rep ${i + 1}/${REPS}: ${withLoop.toFixed(2)} s with the loop, ${without.toFixed(2)} s without`));
  return { name, seconds, mips: (10 * ITERATIONS) / seconds / 1e6 };
}

const results = [];
for (const [label, jit] of [['tsvm --accel soft', undefined], ['tsvm --accel soft, JIT off', '0']] as const) {
  const env = { ...process.env, ...(jit ? { TSVM_SOFT_JIT: jit } : {}) };
  results.push(measure(label, (img) => timed(tsvmRun(img), img, label, env)));
}
let qemuResult;
if (qemu) {
  qemuResult = measure('QEMU TCG', (img) => timed(qemuRun(img), img, 'QEMU TCG'));
} else {
  log('QEMU is not installed (Debian package qemu-system-x86): printing tsvm alone');
}
console.log(`Fixed integer workload: ${ITERATIONS.toLocaleString('en')} iterations x 10 instructions, median of ${REPS}`);
for (const r of [...results, ...(qemuResult ? [qemuResult] : [])]) {
  const ratio = qemuResult ? `   ${(r.mips / qemuResult.mips).toFixed(2)}x QEMU TCG` : '';
  console.log(`${r.name.padEnd(30)} ${r.seconds.toFixed(2).padStart(7)} s ${r.mips.toFixed(0).padStart(6)} M guest instructions/s${ratio}`);
}
