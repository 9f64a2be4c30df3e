// `npm run bench:ab-boot -- TREE...`: the same Debian boot under two or more builds of tsvm,
// interleaved (A B A B ...), for judging a change to the software CPU on a host whose speed drifts
// by ±5-15 % over minutes: each round boots every tree once, so a drift hits all of them alike.
// A tree is a tsvm checkout with `dist/` built (`git worktree add /tmp/base <commit>`, then
// `npm ci` or `npm run build` there). For each tree: the median wall time from process start to
// the console line, and the median CPU time of the process's main thread (the vCPU's) at that
// moment, with each tree's ratio to the first. Every VM is stopped and has exited before the next
// starts. Each tree runs with its own node options (its dist/src/cli/node-flags.js), as its
// bin/tsvm would from a shell.
//
// Options: --runs N boots per tree (default 10); --interp PATTERN boots with the interpreter only
// (TSVM_SOFT_JIT=0) up to the first console line containing PATTERN (e.g. pid_max, ~2 s in),
// which is steadier than a JIT boot for changes to the interpreter alone. Without --interp, the
// JIT boots to "Run /init". The JIT's statistics are off unless TSVM_SOFT_JIT_STATS is set.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureDefaultGuest } from '../scripts/build-guests.js';
import { APPEND, ConsoleVm, INIT_LINE } from './console-vm.js';
import { median } from './median.js';
import { procCpuSeconds } from './proc-cpu.js';

const log = (s: string) => process.stderr.write(`bench:ab-boot: ${s}\n`);
function usage(msg?: string): never {
  if (msg) log(msg);
  process.stderr.write('usage: npm run bench:ab-boot -- [--runs N] [--interp PATTERN] TREE TREE...\n');
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    options: { runs: { type: 'string', default: '10' }, interp: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
    allowPositionals: true,
    strict: true,
  });
} catch (e) {
  usage((e as Error).message);
}
if (parsed.values.help) usage();
const runs = Number(parsed.values.runs);
if (!Number.isInteger(runs) || runs < 1) usage(`--runs ${parsed.values.runs}: expected an integer >= 1`);
const trees = parsed.positionals.map((t) => resolve(t));
if (trees.length < 1) usage('name at least one tree (two or more to compare)');
/** A module under `dir` newer than the bundle built at `built` (ms), or undefined. */
function newerThan(dir: string, built: number): string | undefined {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    const hit = e.isDirectory() ? newerThan(p, built) : e.name.endsWith('.js') && statSync(p).mtimeMs > built ? p : undefined;
    if (hit) return hit;
  }
  return undefined;
}
for (const t of trees) {
  if (!existsSync(join(t, 'dist', 'src', 'cli', 'main.js'))) usage(`${t} has no dist/src/cli/main.js: run \`npm run build\` (or \`npm ci\`) in it first`);
  // bin/tsvm loads the separate modules instead of the bundle when one is newer (a copy of dist/
  // made without -p, a module edited by hand): ~60 ms more at every start, ~3 % of a boot, which
  // would be measured as the tree's own
  const bundle = join(t, 'dist', 'src', 'tsvm.bundle.js');
  const newer = existsSync(bundle) ? newerThan(join(t, 'dist', 'src'), statSync(bundle).mtimeMs) : bundle;
  if (newer) usage(`${t} would start without its bundle (${newer} is newer than dist/src/tsvm.bundle.js): run \`npm run build\` there, or \`touch\` the bundle after editing dist/ by hand`);
}
// each tree's bin/tsvm with that tree's node options (its bin/tsvm's shebang has the same), so a
// change to them is part of what is compared
const nodeFlags = await Promise.all(trees.map(async (t) =>
  ((await import(pathToFileURL(join(t, 'dist', 'src', 'cli', 'node-flags.js')).href)) as { NODE_FLAGS: readonly string[] }).NODE_FLAGS));
const interp = parsed.values.interp;
const line = interp === undefined ? INIT_LINE : new RegExp(interp.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));

const guest = await ensureDefaultGuest({ flavor: 'cloud' });
const env = { ...process.env };
if (interp !== undefined) env.TSVM_SOFT_JIT = '0';
const samples = trees.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
for (let round = 1; round <= runs; round++) {
  for (const [i, tree] of trees.entries()) {
    const args = [...nodeFlags[i]!, join(tree, 'bin', 'tsvm'), 'run', '--accel', 'soft', '--kernel', guest.kernel, '--initrd', guest.initrd, '--memory', '256M', '--append', APPEND];
    const vm = ConsoleVm.start([process.execPath, args], env);
    const { seconds } = await vm.waitFor(line);
    const pid = vm.child.pid!;
    const cpu = procCpuSeconds(`/proc/${pid}/task/${pid}/stat`); // the main thread: the vCPU's
    await vm.stop();
    samples[i]!.wall.push(seconds);
    samples[i]!.cpu.push(cpu);
    log(`round ${round}/${runs}: ${tree}: ${seconds.toFixed(3)} s, main thread ${cpu.toFixed(2)} s of CPU`);
  }
}

const what = interp === undefined ? 'to "Run /init" with the JIT' : `to "${interp}", interpreter only`;
console.log(`Interleaved boots ${what}, ${runs} per tree, medians:`);
const base = { wall: median(samples[0]!.wall), cpu: median(samples[0]!.cpu) };
for (const [i, tree] of trees.entries()) {
  const wall = median(samples[i]!.wall);
  const cpu = median(samples[i]!.cpu);
  const ratio = i === 0 ? '' : `   ${(wall / base.wall).toFixed(3)}x wall, ${(cpu / base.cpu).toFixed(3)}x CPU of the first`;
  console.log(`  ${tree}: ${wall.toFixed(3)} s, main thread ${cpu.toFixed(2)} s${ratio}`);
}
// The same comparison, round by round: each round's boots ran minutes apart at most, so their
// ratio is less exposed to the host's drift than the ratio of the medians (runs of one comparison
// moved by ±3-5 % with the host's load in the thirteenth session); when the two disagree, neither
// is to be trusted.
if (trees.length > 1) {
  console.log('Per-round ratios to the first tree (median of the rounds):');
  for (const [i, tree] of trees.entries()) {
    if (i === 0) continue;
    const per = (k: 'wall' | 'cpu') => median(samples[i]![k].map((v, r) => v / samples[0]![k][r]!)).toFixed(3);
    console.log(`  ${tree}: ${per('wall')}x wall, ${per('cpu')}x CPU`);
  }
}
