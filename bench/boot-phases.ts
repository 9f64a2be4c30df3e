// `npm run bench:boot-phases`: where a boot to /init is slower under tsvm than under QEMU TCG, by
// phase of the kernel's own boot. Boots the Debian cloud kernel with the busybox initramfs to "Run
// /init" under `tsvm run --accel soft` and under `qemu-system-x86_64 -accel tcg`, BENCH_RUNS times
// each (default 3; all of tsvm's boots first, then QEMU's, each after a pause: console-vm.ts
// PAUSE_S, BENCH_PAUSE_S). The kernel stamps each console line
// with its own clock ([seconds.micro], printk), which follows host time under both VMMs (the TSC,
// kvmclock), so the stamps give each phase's wall time without the console's buffering: for every
// message that appears in every boot of both, the median stamp; then the time between consecutive
// such messages under each VMM. Prints the total, the time before the kernel's clock started
// (process start, firmware, loading and decompressing the kernel), and the phases that differ most.
// Env: BENCH_RUNS, BENCH_PAUSE_S, BENCH_PHASES (how many phases to list, default 15).
import { ensureDefaultGuest } from '../scripts/build-guests.js';
import { bootToInit, qemu, qemuCommand, tsvmCommand } from './console-vm.js';
import { median } from './median.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SHOW = Number(process.env.BENCH_PHASES ?? 15);
const log = (s: string) => process.stderr.write(`bench:boot-phases: ${s}\n`);

if (!qemu) {
  log('QEMU is not installed (Debian package qemu-system-x86): nothing to compare with');
  process.exit(1);
}
const guest = await ensureDefaultGuest({ flavor: 'cloud' });

/** One boot's kernel messages (digits folded, so that addresses and counts match): first stamp of each. */
interface Boot { stamps: Map<string, number>; order: string[]; wall: number }

function parse(console: string, wall: number): Boot {
  const stamps = new Map<string, number>();
  const order: string[] = [];
  for (const m of console.matchAll(/\[\s*(\d+\.\d+)\] ([^\r\n]*)/g)) {
    const key = m[2]!.replace(/\d+/g, '#').slice(0, 80);
    if (stamps.has(key)) continue;
    stamps.set(key, Number(m[1]));
    order.push(key);
  }
  return { stamps, order, wall };
}

async function boots(name: string, command: [string, string[]]): Promise<Boot[]> {
  const out: Boot[] = [];
  for (let i = 1; i <= RUNS; i++) {
    const { seconds, output } = await bootToInit(command);
    out.push(parse(output, seconds));
    log(`${name}: run ${i}/${RUNS}: ${seconds.toFixed(2)} s to /init`);
  }
  return out;
}

const tsvm = await boots('tsvm soft', tsvmCommand(guest.kernel, guest.initrd));
const tcg = await boots('QEMU TCG', qemuCommand(guest.kernel, guest.initrd));

// the messages every boot printed, in tsvm's order, each with its median stamp under both
const all = [...tsvm, ...tcg];
const common = tsvm[0]!.order.filter((k) => all.every((b) => b.stamps.has(k)));
const at = (runs: Boot[], k: string) => median(runs.map((b) => b.stamps.get(k)!));
const marks = common.map((k) => ({ k, a: at(tsvm, k), b: at(tcg, k) }));
const last = marks[marks.length - 1];
if (!last) throw new Error('no kernel message common to every boot (is the console missing printk times?)');

const phases = marks.slice(1).map((m, i) => ({ from: marks[i]!.k, to: m.k, a: m.a - marks[i]!.a, b: m.b - marks[i]!.b }));
const ms = (s: number) => (s * 1000).toFixed(0).padStart(6);
const wallA = median(tsvm.map((b) => b.wall));
const wallB = median(tcg.map((b) => b.wall));
console.log(`Boot to "Run /init" (Debian ${guest.kernelVersion}, busybox initramfs), median of ${RUNS}; ms       tsvm   QEMU   diff`);
console.log(`  process start to /init (wall)                                                ${ms(wallA)} ${ms(wallB)} ${ms(wallA - wallB)}`);
console.log(`  before the kernel's clock (process, firmware, kernel load)                   ${ms(wallA - last.a)} ${ms(wallB - last.b)} ${ms(wallA - last.a - wallB + last.b)}`);
console.log(`  kernel's clock to /init (${marks.length} common messages)                                  ${ms(last.a)} ${ms(last.b)} ${ms(last.a - last.b)}`);
console.log(`The ${SHOW} phases that differ most (between consecutive common messages):`);
for (const p of [...phases].sort((x, y) => Math.abs(y.a - y.b) - Math.abs(x.a - x.b)).slice(0, SHOW)) {
  console.log(`  ${ms(p.a)} ${ms(p.b)} ${ms(p.a - p.b)}  ${p.from.slice(0, 40)} -> ${p.to.slice(0, 40)}`);
}
