// What bench:cpu and bench:constructs share: a loop assembled as a firmware image whose iteration
// count is a qword the benchmark patches (found by its marker value), run under `tsvm run --accel
// soft --firmware` and as QEMU TCG's -bios; each run ends through isa-debug-exit with the loop's
// registers folded into the exit value, which every run of one image must agree on. The loop's
// time is the difference of the median wall times with the iterations and without (process
// start, VM creation and mode switches cancel out).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot } from '../scripts/lib/debian.js';
import { tsvmNodeArgs } from '../src/cli/node-flags.js';
import { nasm, repoRoot } from '../test/support/guests.js';
import { median } from './median.js';

const root = repoRoot();
const dir = join(cacheRoot(), 'bench');
const tsvm = join(root, 'bin', 'tsvm');

/** QEMU's binary, or undefined when the Debian package qemu-system-x86 is not installed. */
export const qemu = ['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64'].find((p) => existsSync(p));

/** The command line that runs firmware `img` under tsvm's soft CPU. */
export function tsvmRun(img: string): [string, string[]] {
  return [process.execPath, tsvmNodeArgs(tsvm, ['run', '--accel', 'soft', '--firmware', img, '--memory', '64M'])];
}

/** The command line that runs firmware `img` under QEMU TCG (installed: see `qemu`). */
export function qemuRun(img: string): [string, string[]] {
  return [qemu!, ['-accel', 'tcg', '-m', '64', '-display', 'none', '-serial', 'null', '-monitor', 'none', '-no-reboot', '-bios', img,
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=4']];
}

/**
 * Assemble guests/bench/`asm` (with nasm `defines`, e.g. '-DCASE_tiny') once, as `name`; the
 * result makes images of it with a given iteration count.
 */
export async function loopImage(asm: string, name: string, defines: string[] = []): Promise<(iterations: number) => string> {
  mkdirSync(dir, { recursive: true });
  const built = join(dir, `${name}.bin`);
  execFileSync(await nasm(), ['-f', 'bin', ...defines, '-I', join(root, 'guests/asm/'), '-o', built, join(root, 'guests/bench', asm)]);
  const base = readFileSync(built);
  const marker = Buffer.alloc(8);
  marker.writeBigUInt64LE(0x1122334455667788n);
  const at = base.indexOf(marker);
  if (at < 0) throw new Error(`${name}: iteration marker not found in the image`);
  return (iterations) => {
    const img = Buffer.from(base);
    img.writeBigUInt64LE(BigInt(iterations), at);
    const p = join(dir, `${name}-${iterations}.bin`);
    writeFileSync(p, img);
    return p;
  };
}

/** The exit status each image ended with first, and who ran it: every run must agree. */
const statusOf = new Map<string, { status: number; who: string }>();

/** Seconds one run of `cmd` on image `img` takes; throws when its result differs from an earlier run's. */
export function timed([cmd, args]: [string, string[]], img: string, who: string, env: NodeJS.ProcessEnv = process.env): number {
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

/**
 * Seconds the loop of image `full` takes under `run`, from `reps` runs of it and of `empty` (the
 * same image with no iterations): the difference of their medians. `onRep` sees each pair.
 */
export function loopSeconds(run: (img: string) => number, full: string, empty: string, reps: number,
  onRep?: (rep: number, withLoop: number, without: number) => void): number {
  const fulls: number[] = [];
  const empties: number[] = [];
  for (let i = 0; i < reps; i++) {
    empties.push(run(empty));
    fulls.push(run(full));
    onRep?.(i, fulls[i]!, empties[i]!);
  }
  return median(fulls) - median(empties);
}
