// `npm run bench:cpu`: guest instructions per second of the software CPU on a fixed integer
// workload (guests/bench/cpu-loop.asm: a 10-instruction long-mode loop of ALU, load/store,
// rotate/shift and branch), next to QEMU TCG running the same image as its -bios, in the same run.
// Each side runs the image with ITERATIONS and with 0 iterations; the difference of the median wall
// times is the loop's time (process start, VM creation and mode switches cancel out).
// Env: BENCH_ITERATIONS (default 50,000,000), BENCH_REPS (default 3).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot } from '../scripts/lib/debian.js';
import { tsvmNodeArgs } from '../src/cli/node-flags.js';
import { nasm, repoRoot } from '../test/support/guests.js';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 50_000_000);
const REPS = Number(process.env.BENCH_REPS ?? 3);
/** The exit status each image ended with first (the loop's folded result): every run must agree. */
const statusOf = new Map<string, { status: number; who: string }>();
const log = (s: string) => process.stderr.write(`bench:cpu: ${s}\n`);

const dir = join(cacheRoot(), 'bench');
mkdirSync(dir, { recursive: true });
const root = repoRoot();
const built = join(dir, 'cpu-loop.bin');
execFileSync(await nasm(), ['-f', 'bin', '-I', join(root, 'guests/asm/'), '-o', built, join(root, 'guests/bench/cpu-loop.asm')]);
const base = readFileSync(built);
const marker = Buffer.alloc(8);
marker.writeBigUInt64LE(0x1122334455667788n);
const at = base.indexOf(marker);
if (at < 0) throw new Error('iteration marker not found in the image');

function image(iterations: number): string {
  const img = Buffer.from(base);
  img.writeBigUInt64LE(BigInt(iterations), at);
  const p = join(dir, `cpu-loop-${iterations}.bin`);
  writeFileSync(p, img);
  return p;
}

function timed(cmd: string, args: string[], img: string, who: string, env: NodeJS.ProcessEnv = process.env): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env, encoding: 'utf8' });
  const t = (performance.now() - t0) / 1000;
  // isa-debug-exit: status 2v + 1, v the loop's folded result (odd and at most 255)
  if (r.status === null || (r.status & 1) === 0) throw new Error(`${cmd} ${args.join(' ')} ended with ${r.status ?? r.signal}: ${r.stderr}`);
  const first = statusOf.get(img);
  if (!first) statusOf.set(img, { status: r.status, who });
  else if (first.status !== r.status) throw new Error(`${who} computed a different result (exit status ${r.status}) than ${first.who} (${first.status}) for ${img}`);
  return t;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

function measure(name: string, run: (img: string) => number): { name: string; mips: number; seconds: number } {
  const full = image(ITERATIONS);
  const empty = image(0);
  const fulls: number[] = [];
  const empties: number[] = [];
  for (let i = 0; i < REPS; i++) {
    empties.push(run(empty));
    fulls.push(run(full));
    log(`${name}: rep ${i + 1}/${REPS}: ${fulls[i].toFixed(2)} s with the loop, ${empties[i].toFixed(2)} s without`);
  }
  const seconds = median(fulls) - median(empties);
  return { name, seconds, mips: (10 * ITERATIONS) / seconds / 1e6 };
}

const tsvm = join(root, 'bin', 'tsvm');
const results = [];
for (const [label, jit] of [['tsvm --accel soft', undefined], ['tsvm --accel soft, JIT off', '0']] as const) {
  const env = { ...process.env, ...(jit ? { TSVM_SOFT_JIT: jit } : {}) };
  results.push(measure(label, (img) => timed(process.execPath, tsvmNodeArgs(tsvm, ['run', '--accel', 'soft', '--firmware', img, '--memory', '64M']), img, label, env)));
}
const qemu = ['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64'].find((p) => existsSync(p));
let qemuResult;
if (qemu) {
  qemuResult = measure('QEMU TCG', (img) => timed(qemu, ['-accel', 'tcg', '-m', '64', '-display', 'none', '-serial', 'null', '-monitor', 'none',
    '-no-reboot', '-bios', img, '-device', 'isa-debug-exit,iobase=0xf4,iosize=4'], img, 'QEMU TCG'));
} else {
  log('QEMU is not installed (Debian package qemu-system-x86): printing tsvm alone');
}
console.log(`Fixed integer workload: ${ITERATIONS.toLocaleString('en')} iterations x 10 instructions, median of ${REPS}`);
for (const r of [...results, ...(qemuResult ? [qemuResult] : [])]) {
  const ratio = qemuResult ? `   ${(r.mips / qemuResult.mips).toFixed(2)}x QEMU TCG` : '';
  console.log(`${r.name.padEnd(30)} ${r.seconds.toFixed(2).padStart(7)} s ${r.mips.toFixed(0).padStart(6)} M guest instructions/s${ratio}`);
}
