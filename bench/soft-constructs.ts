// `npm run bench:constructs`: the software CPU's time per pass of small loops, one per code shape
// (guests/bench/constructs.asm: a tight loop, memory, a branch inside a loop, near and far calls,
// an indirect call, jumps between pages, a bignum inner loop called for 8 limbs), next to QEMU TCG
// running the same images as its -bios, in the same run. Where bench:cpu gives one throughput,
// this shows which shapes are slower than QEMU's and by how much: what the boot's time is made
// of besides straight-line code (docs/soft-cpu-strategy.md). Each image runs with its passes and
// with none; the difference of the median wall times over the passes is the time per pass.
// Env: BENCH_ITERATIONS (default per case, ~1-2 s of a run: enough for V8 to have tiered the
// loop up), BENCH_REPS (default 3), BENCH_CASES (a comma-separated subset).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot } from '../scripts/lib/debian.js';
import { tsvmNodeArgs } from '../src/cli/node-flags.js';
import { nasm, repoRoot } from '../test/support/guests.js';

/** The cases and their default number of passes. */
const PASSES = { tiny: 300e6, memory: 300e6, ifthen: 300e6, calls: 100e6, farcall: 100e6, indirect: 100e6, dispatch: 100e6, bignum: 20e6 } as const;
const CASES = Object.keys(PASSES) as (keyof typeof PASSES)[];
const REPS = Number(process.env.BENCH_REPS ?? 3);
const selected = process.env.BENCH_CASES ? process.env.BENCH_CASES.split(',') : [...CASES];
const log = (s: string) => process.stderr.write(`bench:constructs: ${s}\n`);
for (const c of selected) {
  if (!(CASES as readonly string[]).includes(c)) throw new Error(`BENCH_CASES: unknown case "${c}" (known: ${CASES.join(', ')})`);
}
const passes = (name: string) => Number(process.env.BENCH_ITERATIONS ?? PASSES[name as keyof typeof PASSES]);

const dir = join(cacheRoot(), 'bench');
mkdirSync(dir, { recursive: true });
const root = repoRoot();
const nasmBin = await nasm();
const tsvm = join(root, 'bin', 'tsvm');
const qemu = ['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64'].find((p) => existsSync(p));
if (!qemu) log('QEMU is not installed (Debian package qemu-system-x86): printing tsvm alone');

/** The image of `name` with `iterations` patched in. */
function image(name: string, iterations: number): string {
  const built = join(dir, `constructs-${name}.bin`);
  execFileSync(nasmBin, ['-f', 'bin', `-DCASE_${name}`, '-I', join(root, 'guests/asm/'), '-o', built, join(root, 'guests/bench/constructs.asm')]);
  const img = readFileSync(built);
  const marker = Buffer.alloc(8);
  marker.writeBigUInt64LE(0x1122334455667788n);
  const at = img.indexOf(marker);
  if (at < 0) throw new Error(`${name}: iteration marker not found in the image`);
  img.writeBigUInt64LE(BigInt(iterations), at);
  const p = join(dir, `constructs-${name}-${iterations}.bin`);
  writeFileSync(p, img);
  return p;
}

/** The exit statuses each image ended with, under either VMM: each must have exactly one. */
const statusOf = new Map<string, Set<number>>();

/** Seconds one run of `img` takes. */
function timed(cmd: string, args: string[], img: string): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const t = (performance.now() - t0) / 1000;
  // isa-debug-exit: status 2v + 1, v the loop's folded result
  if (r.status === null || (r.status & 1) === 0) throw new Error(`${cmd} ${args.join(' ')} ended with ${r.status ?? r.signal}: ${r.stderr}`);
  const seen = statusOf.get(img) ?? new Set<number>();
  seen.add(r.status);
  statusOf.set(img, seen);
  if (seen.size > 1) throw new Error(`${img}: runs computed different results (exit statuses ${[...seen].join(', ')})`);
  return t;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** Nanoseconds per pass of `run` on the images (`n` passes and none). */
function perPass(run: (img: string) => number, full: string, empty: string, n: number): number {
  const fulls: number[] = [];
  const empties: number[] = [];
  for (let i = 0; i < REPS; i++) {
    empties.push(run(empty));
    fulls.push(run(full));
  }
  return ((median(fulls) - median(empties)) * 1e9) / n;
}

const rows: { name: string; n: number; tsvm: number; qemu?: number }[] = [];
for (const name of selected) {
  const n = passes(name);
  const full = image(name, n);
  const empty = image(name, 0);
  const ns = perPass((img) => timed(process.execPath, tsvmNodeArgs(tsvm, ['run', '--accel', 'soft', '--firmware', img, '--memory', '64M']), img), full, empty, n);
  let q: number | undefined;
  if (qemu) {
    const args = (img: string) => ['-accel', 'tcg', '-m', '64', '-display', 'none', '-serial', 'null', '-monitor', 'none', '-no-reboot', '-bios', img, '-device', 'isa-debug-exit,iobase=0xf4,iosize=4'];
    q = perPass((img) => timed(qemu, args(img), img), full, empty, n);
  }
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
