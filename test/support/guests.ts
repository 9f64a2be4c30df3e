// Test guests: the tiny firmware images in guests/asm/*.asm (assembled with Debian's nasm,
// fetched into the tsvm cache) and the default Linux guest (Debian kernel + busybox initramfs).

import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cacheRoot, fetchDebianPackage } from '../../scripts/lib/debian.js';
import { ensureDefaultGuest, type GuestFlavor, type GuestManifest } from '../../scripts/build-guests.js';

const execFileP = promisify(execFile);

/** The repository root (works from the sources and from dist/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'tsvm') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the tsvm repository root');
    dir = up;
  }
}

export function asmDir(): string {
  return join(repoRoot(), 'guests', 'asm');
}

/** Names of the assembly guests: guests/asm/<name>.asm. */
export async function listAsmGuests(): Promise<string[]> {
  return (await readdir(asmDir()))
    .filter((f) => f.endsWith('.asm'))
    .map((f) => basename(f, '.asm'))
    .sort();
}

/** Size of every assembly guest image, and where the reset vector sits in it. */
export const GUEST_IMAGE_SIZE = 0x10000;
export const RESET_VECTOR_OFFSET = 0xfff0;

/** How a guest ends, as the VMM should report it. */
export type GuestEnd =
  | { kind: 'exit'; status: number } // isa-debug-exit: status = (v << 1) | 1
  | { kind: 'halt' } // HLT with interrupts disabled and nothing pending
  | { kind: 'shutdown' } // triple fault
  | { kind: 'reset' } // resets the machine: with --no-reboot tsvm exits 0, else the guest starts over
  | { kind: 'until-signalled'; sigtermStatus: number }; // runs until tsvm gets SIGTERM (stdout: all of it, signal included)

/** What each assembly guest writes to the serial port and how it ends (when all goes well). */
export const ASM_GUESTS: Record<string, { stdout: string; end: GuestEnd }> = {
  hello: { stdout: 'Hello from real mode\n', end: { kind: 'exit', status: 0x21 } },
  modes: { stdout: 'real\nprotected16\nprotected32\nlong64\nmodes ok\n', end: { kind: 'exit', status: 0x23 } },
  pio: { stdout: 'pio ok\n', end: { kind: 'exit', status: 0x25 } },
  mmio: { stdout: 'mmio ok\n', end: { kind: 'exit', status: 0x27 } },
  hlt: { stdout: 'halting\n', end: { kind: 'halt' } },
  'triple-fault': { stdout: 'triple fault next\n', end: { kind: 'shutdown' } },
  // Platform guests (test/accel/kvm-platform.test.ts runs them with the options they need).
  smp: { stdout: 'smp ok 1 cpus\n', end: { kind: 'exit', status: 0x29 } }, // "smp ok N cpus" with --cpus N
  'power-button': { stdout: 'waiting for the power button\npower button pressed\n', end: { kind: 'until-signalled', sigtermStatus: 0 } },
  spin: { stdout: 'spinning\n', end: { kind: 'until-signalled', sigtermStatus: 143 } },
  // Prints 0, 1, 2, ... one line every 20 ms (PIT interrupts, HLT between) until stopped; stdout
  // here is how it starts (test/mgmt and test/api use it for the console and the API under load).
  counter: { stdout: '0\n1\n2\n', end: { kind: 'until-signalled', sigtermStatus: 143 } },
  // Counts the interrupts it gets (MSI vectors 0x40-0x47, 8259 IRQ 3, I/O APIC pin 17) in RAM and
  // sleeps in HLT; test/accel/kvm-irqfd.test.ts sends them. Alone it just waits for SIGTERM.
  irq: { stdout: 'irq guest ready\n', end: { kind: 'until-signalled', sigtermStatus: 143 } },
  'reset-kbd': { stdout: 'resetting via i8042\n', end: { kind: 'reset' } },
  'reset-cf9': { stdout: 'resetting via 0xcf9\n', end: { kind: 'reset' } },
};

let nasmPath: Promise<string> | undefined;

/** Debian's nasm, fetched into the cache (it runs from the extracted package). */
export function nasm(): Promise<string> {
  nasmPath ??= fetchDebianPackage('nasm').then((dir) => join(dir, 'usr/bin/nasm'));
  return nasmPath;
}

/**
 * Assembles guests/asm/<name>.asm with `nasm -f bin` into
 * `<cache>/guests/asm/<name>-<hash>.bin` and returns that path. The hash covers the source,
 * the shared include files and the nasm package, so an unchanged guest is not reassembled.
 */
export async function assembleGuest(name: string): Promise<string> {
  const dir = asmDir();
  const src = join(dir, `${name}.asm`);
  if (!existsSync(src)) throw new Error(`no such assembly guest: ${src}`);
  const nasmBin = await nasm();
  const h = createHash('sha256');
  h.update(nasmBin); // the path names the nasm package version
  h.update(await readFile(src));
  for (const inc of (await readdir(dir)).filter((f) => f.endsWith('.inc')).sort()) {
    h.update(inc);
    h.update(await readFile(join(dir, inc)));
  }
  const outDir = join(cacheRoot(), 'guests', 'asm');
  const out = join(outDir, `${name}-${h.digest('hex').slice(0, 16)}.bin`);
  if (existsSync(out)) return out;
  await mkdir(outDir, { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  try {
    await execFileP(nasmBin, ['-f', 'bin', '-i', dir + '/', '-o', tmp, src]);
  } catch (err) {
    await rm(tmp, { force: true });
    const e = err as { stderr?: string; message: string };
    throw new Error(`nasm ${name}.asm failed: ${e.stderr?.trim() || e.message}`);
  }
  await rename(tmp, out);
  return out;
}

/** The default Linux guest (fetched and built on first use; see scripts/build-guests.ts). */
export function findDefaultGuest(flavor: GuestFlavor = 'cloud'): Promise<GuestManifest> {
  return ensureDefaultGuest({ flavor });
}
