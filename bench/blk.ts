// `npm run bench:blk`: disk I/O inside the guest, tsvm against QEMU, in the same run.
//
// The stock Debian cloud kernel and the default busybox initramfs (ensureDefaultGuest) boot with
// one virtio-blk disk: a fresh copy, for every boot, of the same pre-filled raw image. The
// initrd is the default one with a second cpio archive appended (Linux unpacks concatenated
// archives in order) holding guests/bench/blkbench.asm, a static program that opens /dev/vda
// with O_DIRECT (the guest page cache never answers for the device) and issues one request at a
// time until a time limit. The guest script, passed as tsvm.run64, runs four phases:
//   seq read   SEQ_BS blocks from offset 0 on, wrapping at the end of the disk
//   rand read  4 KiB blocks at random 4 KiB-aligned offsets (same seeded sequence on every VMM)
//   seq write  as seq read, writing
//   rand write as rand read, writing
// The program times each phase with the guest's CLOCK_MONOTONIC; the bench checks that clock
// against the host's (the console lines' arrival times) and warns when they disagree.
//
// VMMs compared: `tsvm run --accel soft` and `qemu-system-x86_64 -accel tcg` with
// `-drive if=virtio,format=raw,cache=writeback` (QEMU's default cache mode, and the one tsvm's
// raw backend matches: host page cache, guest flush = fdatasync) and cache=none (O_DIRECT on the
// host; recorded for reference). With --qcow2 the same data as a qcow2 image on both as well.
// Progress on stderr, the table on stdout. If QEMU is not installed, tsvm is printed alone.
//
// Env: BENCH_RUNS boots per configuration (default 3; the median per phase is reported),
// BENCH_SECONDS per phase (default 5), BENCH_SEQ_BS sequential block size in bytes (default
// 1 MiB), BENCH_DISK_MIB disk size (default 256), BENCH_QEMU_CACHE (default "writeback,none"),
// BENCH_TSVM_BASELINE=<other checkout>/bin/tsvm adds that build as one more row (A/B of a change).
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, fdatasyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDefaultGuest } from '../scripts/build-guests.js';
import { CpioWriter } from '../scripts/lib/cpio.js';
import { cacheRoot } from '../scripts/lib/debian.js';
import { tsvmNodeArgs } from '../src/cli/node-flags.js';
import { nasm, repoRoot } from '../test/support/guests.js';
import { procCpuSeconds } from './proc-cpu.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const SEQ_BS = Number(process.env.BENCH_SEQ_BS ?? 1 << 20);
const DISK_MIB = Number(process.env.BENCH_DISK_MIB ?? 256);
const QEMU_CACHES = (process.env.BENCH_QEMU_CACHE ?? 'writeback,none').split(',').filter(Boolean);
const WITH_QCOW2 = process.argv.includes('--qcow2');
/** Another tsvm build's bin/tsvm, run as one more configuration (A/B of a change). */
const BASELINE = process.env.BENCH_TSVM_BASELINE;
const MEMORY_MIB = 256;
const log = (s: string) => process.stderr.write(`bench:blk: ${s}\n`);

for (const [name, v] of [['BENCH_RUNS', RUNS], ['BENCH_SECONDS', SECONDS], ['BENCH_DISK_MIB', DISK_MIB]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
}
if (!Number.isInteger(SEQ_BS) || SEQ_BS < 512 || SEQ_BS % 512 !== 0 || SEQ_BS > 4 << 20) throw new Error('BENCH_SEQ_BS: a multiple of 512, at most 4 MiB');
for (const c of QEMU_CACHES) if (!['writeback', 'none', 'writethrough', 'directsync', 'unsafe'].includes(c)) throw new Error(`BENCH_QEMU_CACHE: unknown cache mode ${c}`);

interface Phase {
  label: string;
  op: 'r' | 'w';
  pattern: 's' | 'r';
  bs: number;
}

const sizeLabel = (b: number) => (b >= 1 << 20 && b % (1 << 20) === 0 ? `${b >> 20}M` : b % 1024 === 0 ? `${b >> 10}K` : `${b}B`);
const PHASES: Phase[] = [
  { label: `seq read ${sizeLabel(SEQ_BS)}`, op: 'r', pattern: 's', bs: SEQ_BS },
  { label: 'rand read 4K', op: 'r', pattern: 'r', bs: 4096 },
  { label: `seq write ${sizeLabel(SEQ_BS)}`, op: 'w', pattern: 's', bs: SEQ_BS },
  { label: 'rand write 4K', op: 'w', pattern: 'r', bs: 4096 },
];

const root = repoRoot();
const dir = join(cacheRoot(), 'bench');
mkdirSync(dir, { recursive: true });
const guest = await ensureDefaultGuest({ flavor: 'cloud' });

// ---- the guest tool and the bench initrd (default initrd + one more cpio archive) ----
const toolBin = join(dir, 'blkbench');
execFileSync(await nasm(), ['-f', 'bin', '-o', toolBin, join(root, 'guests/bench/blkbench.asm')]);
const extra = new CpioWriter();
extra.file('bin/blkbench', readFileSync(toolBin), 0o755);
const extraCpio = extra.finish();
const baseInitrd = readFileSync(guest.initrd);
// The kernel looks for the next archive's header at a 4-byte-aligned offset; zeros in between are skipped.
const pad = Buffer.alloc((4 - (baseInitrd.length % 4)) % 4);
const initrdData = Buffer.concat([baseInitrd, pad, extraCpio]);
const initrd = join(dir, `blk-initrd-${createHash('sha256').update(initrdData).digest('hex').slice(0, 16)}.img`);
if (!existsSync(initrd)) writeAtomically(initrd, initrdData);

// ---- the disk images: pre-filled with random bytes, so reads return data from real blocks ----
const rawImage = join(dir, `blk-disk-${DISK_MIB}M.raw`);
if (!existsSync(rawImage) || statSync(rawImage).size !== DISK_MIB << 20) {
  log(`filling ${rawImage} (${DISK_MIB} MiB of random bytes)`);
  const tmp = `${rawImage}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < DISK_MIB; i++) writeSync(fd, randomFillSync(chunk));
  fdatasyncSync(fd);
  closeSync(fd);
  renameSync(tmp, rawImage);
}
const tsvm = join(root, 'bin', 'tsvm');
let qcow2Image: string | undefined;
if (WITH_QCOW2) {
  qcow2Image = join(dir, `blk-disk-${DISK_MIB}M.qcow2`);
  if (!existsSync(qcow2Image) || statSync(qcow2Image).mtimeMs < statSync(rawImage).mtimeMs) {
    log(`converting the image to qcow2 (tsvm img convert)`);
    rmSync(qcow2Image, { force: true });
    execFileSync(process.execPath, [tsvm, 'img', 'convert', '-f', 'raw', '-O', 'qcow2', rawImage, qcow2Image], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
}

function writeAtomically(path: string, data: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  writeSync(fd, data);
  closeSync(fd);
  renameSync(tmp, path);
}

// ---- the guest script ----
const BEGIN = 'blk-bench-begin';
const script = [
  'set -e',
  `echo ${BEGIN}`,
  ...PHASES.map((p) => `blkbench ${p.op} ${p.pattern} ${p.bs} ${SECONDS} /dev/vda`),
].join('\n');
const append = `console=ttyS0 panic=-1 tsvm.run64=${Buffer.from(script).toString('base64')}`;

// ---- running one VM ----
interface PhaseResult {
  ops: number;
  ns: number;
  /** Host seconds between this phase's result line and the previous one (undefined for the first). */
  hostGap?: number;
  /** Host CPU seconds the VMM process (all threads) used from the previous line to this one. */
  cpu: number;
}

/** User + system CPU seconds of a process so far (all threads), from /proc/PID/stat. */
function cpuSeconds(pid: number): number {
  try {
    return procCpuSeconds(`/proc/${pid}/stat`);
  } catch {
    return NaN;
  }
}

const LINE = /blkbench ([rw]) ([sr]) (\d+) ops=(\d+) ns=(\d+)/;
const ERROR = /blkbench: error [^\r\n]*/;

function runOnce(name: string, cmd: string, args: string[]): Promise<PhaseResult[]> {
  const timeoutMs = 180_000 + PHASES.length * SECONDS * 3_000;
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let scanned = 0;
  let lastLineAt: number | undefined;
  let lastCpu = NaN;
  const results: PhaseResult[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      let nl: number;
      while ((nl = out.indexOf('\n', scanned)) >= 0) {
        const line = out.slice(scanned, nl);
        scanned = nl + 1;
        if (line.startsWith(BEGIN)) lastCpu = cpuSeconds(child.pid!);
        const m = LINE.exec(line);
        if (!m) continue;
        const now = performance.now();
        const cpu = cpuSeconds(child.pid!);
        const p = PHASES[results.length];
        if (!p || m[1] !== p.op || m[2] !== p.pattern || Number(m[3]) !== p.bs) continue;
        const r: PhaseResult = {
          ops: Number(m[4]),
          ns: Number(m[5]),
          hostGap: lastLineAt === undefined ? undefined : (now - lastLineAt) / 1000,
          cpu: cpu - lastCpu,
        };
        lastLineAt = now;
        lastCpu = cpu;
        results.push(r);
        log(`${name}: ${p.label.padEnd(15)} ${fmtRate(r, p.bs)}`);
      }
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      if (results.length === PHASES.length && /tsvm-initramfs: run exit status 0/.test(out)) {
        resolve(results);
        return;
      }
      const why = ERROR.exec(out)?.[0] ?? (signal === 'SIGKILL' ? `no result within ${timeoutMs / 1000} s` : `exit status ${status}`);
      reject(new Error(`${name}: ${why}\nstderr:\n${err.slice(-2000)}\nconsole tail:\n${out.slice(-2000)}`));
    });
  });
}

const mbps = (r: PhaseResult, bs: number) => (r.ops * bs) / (r.ns / 1e9) / 1e6;
const iops = (r: PhaseResult) => r.ops / (r.ns / 1e9);
const cpuPerOp = (r: PhaseResult) => (r.cpu / r.ops) * 1e6;
const fmtRate = (r: PhaseResult, bs: number) =>
  `${mbps(r, bs).toFixed(1).padStart(8)} MB/s ${iops(r).toFixed(0).padStart(7)} IOPS, host CPU ${cpuPerOp(r).toFixed(0).padStart(6)} µs/request`;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

interface Config {
  name: string;
  image: string;
  args: (disk: string) => { cmd: string; args: string[] };
}

const qemu = ['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64'].find((p) => existsSync(p));
const qemuArgs = (drive: string) => ({
  cmd: qemu!,
  args: ['-accel', 'tcg', '-m', String(MEMORY_MIB), '-nographic', '-no-reboot', '-kernel', guest.kernel, '-initrd', initrd, '-append', append, '-drive', drive],
});
const tsvmArgs = (disk: string, bin = tsvm) => ({
  cmd: process.execPath,
  args: tsvmNodeArgs(bin, ['run', '--accel', 'soft', '--kernel', guest.kernel, '--initrd', initrd, '--memory', `${MEMORY_MIB}M`, '--disk', disk, '--append', append]),
});

const configs: Config[] = [{ name: 'tsvm soft raw', image: rawImage, args: (d) => tsvmArgs(`${d},format=raw`) }];
if (BASELINE) configs.push({ name: 'tsvm baseline raw', image: rawImage, args: (d) => tsvmArgs(`${d},format=raw`, BASELINE) });
if (qemu) {
  for (const c of QEMU_CACHES) configs.push({ name: `QEMU TCG raw cache=${c}`, image: rawImage, args: (d) => qemuArgs(`file=${d},if=virtio,format=raw,cache=${c}`) });
} else {
  log('QEMU is not installed (Debian package qemu-system-x86): printing tsvm alone, no ratios');
}
if (qcow2Image) {
  configs.push({ name: 'tsvm soft qcow2', image: qcow2Image, args: (d) => tsvmArgs(`${d},format=qcow2`) });
  if (qemu) configs.push({ name: 'QEMU TCG qcow2 cache=writeback', image: qcow2Image, args: (d) => qemuArgs(`file=${d},if=virtio,format=qcow2,cache=writeback`) });
}

// ---- the runs: configurations interleaved, so a change in host load hits all of them alike ----
const work = mkdtempSync(join(tmpdir(), 'tsvm-bench-blk-'));
const results = new Map<string, PhaseResult[][]>(configs.map((c) => [c.name, []]));
const clockWarnings: string[] = [];
try {
  for (let run = 1; run <= RUNS; run++) {
    for (const c of configs) {
      // A fresh copy of the image, on disk (fdatasync) before the VM starts: every boot starts alike.
      const disk = join(work, `disk-${c.image.endsWith('.qcow2') ? 'qcow2' : 'raw'}`);
      copyFileSync(c.image, disk);
      const fd = openSync(disk, 'r+');
      fdatasyncSync(fd);
      closeSync(fd);
      log(`${c.name}: run ${run}/${RUNS}`);
      const { cmd, args } = c.args(disk);
      const r = await runOnce(c.name, cmd, args);
      results.get(c.name)!.push(r);
      // The guest's clock against the host's: from the first result line to the last, the host saw
      // the later phases run (plus an open() each); the guest's own times should add up to about that.
      const host = r.slice(1).reduce((s, x) => s + (x.hostGap ?? 0), 0);
      const guestSeconds = r.slice(1).reduce((s, x) => s + x.ns / 1e9, 0);
      if (Math.abs(host - guestSeconds) / guestSeconds > 0.1) {
        const w = `${c.name} run ${run}: guest clock ${guestSeconds.toFixed(2)} s vs host ${host.toFixed(2)} s for phases 2-${PHASES.length}`;
        clockWarnings.push(w);
        log(`warning: ${w}`);
      }
      rmSync(disk, { force: true });
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

// ---- the table ----
interface Cell {
  mbps: number;
  iops: number;
  min: number;
  max: number;
  cpuUs: number;
}
const summary = configs.map((c) => ({
  name: c.name,
  phases: PHASES.map((p, i): Cell => {
    const runs = results.get(c.name)!.map((r) => r[i]);
    const rates = runs.map((r) => mbps(r, p.bs));
    const m = median(rates);
    return { mbps: m, iops: (m * 1e6) / p.bs, min: Math.min(...rates), max: Math.max(...rates), cpuUs: median(runs.map(cpuPerOp)) };
  }),
}));
const ref = summary.find((s) => s.name === 'QEMU TCG raw cache=writeback') ?? summary.find((s) => s.name.startsWith('QEMU'));
const refQcow2 = summary.find((s) => s.name === 'QEMU TCG qcow2 cache=writeback');

console.log(
  `Disk I/O in the guest: Debian ${guest.kernelVersion}, ${MEMORY_MIB} MiB RAM, ${DISK_MIB} MiB image, O_DIRECT, ` +
    `one request at a time, ${SECONDS} s per phase; median of ${RUNS} boot${RUNS > 1 ? 's' : ''}. MB = 10^6 bytes.`,
);
console.log('"host CPU" is the VMM process\'s user+system time (all threads) per request, median.');
const nameWidth = Math.max(...configs.map((c) => c.name.length));
console.log(`${'phase'.padEnd(14)} ${'VMM'.padEnd(nameWidth)} ${'MB/s'.padStart(8)} ${'IOPS'.padStart(7)} ${'MB/s min-max'.padStart(15)} ${'host CPU µs/req'.padStart(16)}`);
for (let i = 0; i < PHASES.length; i++) {
  summary.forEach((s, k) => {
    const x = s.phases[i];
    const range = `${x.min.toFixed(1)}-${x.max.toFixed(1)}`;
    console.log(`${(k === 0 ? PHASES[i].label : '').padEnd(14)} ${s.name.padEnd(nameWidth)} ${x.mbps.toFixed(1).padStart(8)} ${x.iops.toFixed(0).padStart(7)} ${range.padStart(15)} ${x.cpuUs.toFixed(0).padStart(16)}`);
  });
}
const ratioRows = (tsvmName: string, peer: typeof ref) => {
  const t = summary.find((s) => s.name === tsvmName);
  if (!t || !peer) return;
  console.log(`${t.name} / ${peer.name}: throughput ratio (goal >= 1.00x), host CPU per request ratio`);
  for (let i = 0; i < PHASES.length; i++) {
    console.log(`  ${PHASES[i].label.padEnd(14)} ${(t.phases[i].mbps / peer.phases[i].mbps).toFixed(2).padStart(6)}x ${(t.phases[i].cpuUs / peer.phases[i].cpuUs).toFixed(2).padStart(8)}x`);
  }
};
ratioRows('tsvm soft raw', ref);
ratioRows('tsvm soft qcow2', refQcow2);
if (!ref) console.log('(QEMU not installed: no ratios)');
for (const w of clockWarnings) console.log(`warning: ${w}`);
