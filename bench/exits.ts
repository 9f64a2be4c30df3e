// `npm run bench:exits`: the cost of a KVM exit round trip (guest `out` → user space → guest),
// tsvm against a minimal C KVM loop on the same guest, in the same run.
//
// Each side runs the guest of bench/exit-guest.ts twice: with 200,000 `out` instructions and with
// none. The difference of the two wall times, divided by 200,000, is the cost of one exit; the
// fixed costs (creating the VM, threads, memory) cancel out. Each measurement is repeated and the
// median taken. Two tsvm cases: port 0x80, which the vCPU thread answers itself, and port 0x90,
// which it forwards to the device thread through the shared-memory mailbox.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitGuestImage } from './exit-guest.js';
import { Vm } from '../src/vmm/vm.js';
import { defaultConfig, validateConfig } from '../src/vmm/vm-config.js';
import { silentLogger } from '../src/vmm/log.js';
import { median } from './median.js';

const COUNT = Number(process.env.BENCH_EXITS ?? 200_000);
const REPS = Number(process.env.BENCH_REPS ?? 5);
const cache = process.env.TSVM_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'tsvm');
const dir = join(cache, 'bench');
mkdirSync(dir, { recursive: true });
const log = (s: string) => process.stderr.write(`bench:exits: ${s}\n`);

function image(count: number, port: number): string {
  const p = join(dir, `exit-guest-${port.toString(16)}-${count}.bin`);
  writeFileSync(p, exitGuestImage(count, port));
  return p;
}

function buildC(): string {
  const src = fileURLToPath(new URL('../../bench/kvm-exit-loop.c', import.meta.url));
  const bin = join(dir, 'kvm-exit-loop');
  log(`compiling ${src} with gcc -O2`);
  execFileSync('gcc', ['-O2', '-o', bin, src], { stdio: 'inherit' });
  return bin;
}

function runC(bin: string, img: string): number {
  const r = spawnSync(bin, [img], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`C loop failed: ${r.stderr}`);
  const m = /seconds=([\d.]+)/.exec(r.stdout);
  if (!m) throw new Error(`C loop printed nothing useful: ${r.stdout}`);
  return Number(m[1]);
}

async function runTsvm(img: string): Promise<number> {
  const config = validateConfig({ ...defaultConfig(), firmware: img, accel: 'kvm', memoryBytes: 64 << 20, name: 'bench-exits' });
  const vm = await Vm.create(config, { log: silentLogger });
  const t0 = performance.now();
  const exit = await vm.run();
  const t = (performance.now() - t0) / 1000;
  if (exit.code !== 1) throw new Error(`tsvm run ended unexpectedly: ${exit.message}`);
  return t;
}

async function perExit(name: string, run: (img: string) => number | Promise<number>, port: number) {
  const full = image(COUNT, port);
  const empty = image(0, port);
  const fulls: number[] = [];
  const empties: number[] = [];
  for (let i = 0; i < REPS; i++) {
    empties.push(await run(empty));
    fulls.push(await run(full));
    log(`${name}: rep ${i + 1}/${REPS}: ${fulls[i].toFixed(3)} s with ${COUNT} exits, ${empties[i].toFixed(3)} s with none`);
  }
  const seconds = median(fulls) - median(empties);
  return { name, us: (seconds / COUNT) * 1e6, perSecond: COUNT / seconds };
}

const bin = buildC();
const c = await perExit('C KVM loop, port 0x80', (img) => runC(bin, img), 0x80);
const local = await perExit('tsvm, port 0x80 (answered in the vCPU thread)', runTsvm, 0x80);
const forwarded = await perExit('tsvm, port 0x90 (forwarded to the device thread)', runTsvm, 0x90);

const row = (r: { name: string; us: number; perSecond: number }) =>
  `${r.name.padEnd(52)} ${r.us.toFixed(2).padStart(8)} µs/exit ${Math.round(r.perSecond).toString().padStart(9)} exits/s`;
console.log(`KVM exit round trip, ${COUNT} exits, median of ${REPS}`);
console.log(row(c));
console.log(row(local) + `   ratio to C: ${(local.perSecond / c.perSecond).toFixed(3)}`);
console.log(row(forwarded) + `   ratio to C: ${(forwarded.perSecond / c.perSecond).toFixed(3)}`);
