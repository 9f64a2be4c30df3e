// Shared helpers for the block tests: temporary directories, patterned data, running `tsvm img`
// in a child process, and finding qemu-img (Debian's qemu-utils, fetched into the tsvm cache
// when the host has none) for the interoperability tests.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { xorshift32 } from '../support/xorshift.js';

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `tsvm-block-${tag}-`));
}

/** Deterministic bytes: a small xorshift generator seeded by `seed`. */
export function pattern(length: number, seed: number): Uint8Array {
  const b = new Uint8Array(length);
  const next = xorshift32((seed * 2654435761) >>> 0 || 1);
  for (let i = 0; i < length; i++) b[i] = next() & 0xff;
  return b;
}

/** A seeded PRNG returning integers in [0, n). */
export function rng(seed: number): (n: number) => number {
  const next = xorshift32(seed >>> 0 || 0x9e3779b9);
  return (n: number) => next() % n;
}

const IMG_COMMAND_JS = fileURLToPath(new URL('../../src/cli/img-command.js', import.meta.url));

/**
 * Concurrent writes for model-checked disk tests: each write is mirrored into `model` and left in
 * flight, except that writes in flight together never overlap (their order would be undefined):
 * an overlapping one waits for the others first.
 */
export class ConcurrentWrites {
  private pending: Promise<void>[] = [];
  private ranges: [number, number][] = [];

  constructor(private readonly disk: { write(offset: number, src: Uint8Array): Promise<void> }, private readonly model: Uint8Array) {}

  get inFlight(): number {
    return this.pending.length;
  }

  async write(off: number, data: Uint8Array): Promise<void> {
    if (this.ranges.some(([a, b]) => off < b && a < off + data.length)) await this.drain();
    this.model.set(data, off);
    this.ranges.push([off, off + data.length]);
    this.pending.push(this.disk.write(off, data));
  }

  /** Waits for every write in flight. */
  async drain(): Promise<void> {
    await Promise.all(this.pending.splice(0));
    this.ranges.length = 0;
  }
}

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `tsvm img ARGS` (imgCommand in a fresh Node process). */
export function tsvmImg(args: string[]): CliResult {
  const code = `import { imgCommand } from ${JSON.stringify(IMG_COMMAND_JS)}; process.exitCode = await imgCommand(process.argv.slice(1));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code, '--', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface QemuImg {
  path: string;
  /** qemu-io, from the same place (it ships in the same package). */
  io: string;
  env: NodeJS.ProcessEnv;
}

/** Shared libraries qemu-img links against, and the Debian (bookworm) packages holding them. */
const SONAME_PACKAGES: Record<string, string> = {
  'libnuma.so.1': 'libnuma1',
  'liburing.so.2': 'liburing2',
  'libglib-2.0.so.0': 'libglib2.0-0',
  'libgmodule-2.0.so.0': 'libglib2.0-0',
  'libgnutls.so.30': 'libgnutls30',
  'libzstd.so.1': 'libzstd1',
  'libz.so.1': 'zlib1g',
  'libaio.so.1': 'libaio1',
  'libnettle.so.8': 'libnettle8',
  'libhogweed.so.6': 'libhogweed6',
  'libgmp.so.10': 'libgmp10',
  'libpcre2-8.so.0': 'libpcre2-8-0',
  'libp11-kit.so.0': 'libp11-kit0',
  'libidn2.so.0': 'libidn2-0',
  'libunistring.so.2': 'libunistring2',
  'libtasn1.so.6': 'libtasn1-6',
  'libffi.so.8': 'libffi8',
  'libselinux.so.1': 'libselinux1',
  'libfuse3.so.3': 'libfuse3-3',
};

function missingLibs(bin: string, env: NodeJS.ProcessEnv): string[] {
  const r = spawnSync('ldd', [bin], { encoding: 'utf8', env });
  return [...(r.stdout ?? '').matchAll(/^\s*(\S+) => not found/gm)].map((m) => m[1]);
}

let cached: Promise<QemuImg | { skip: string }> | undefined;

/** qemu-img from the host, else from Debian's qemu-utils (plus any libraries it lacks). */
export function findQemuImg(): Promise<QemuImg | { skip: string }> {
  cached ??= locate();
  return cached;
}

async function locate(): Promise<QemuImg | { skip: string }> {
  const sys = spawnSync('sh', ['-c', 'command -v qemu-img'], { encoding: 'utf8' });
  if (sys.status === 0 && sys.stdout.trim()) {
    const path = sys.stdout.trim();
    const io = join(dirname(path), 'qemu-io');
    if (existsSync(io)) return { path, io, env: process.env };
  }
  if (process.env.TSVM_NO_TOOL_DOWNLOAD) return { skip: 'qemu-img is not installed and TSVM_NO_TOOL_DOWNLOAD is set' };
  let debian: typeof import('../../scripts/lib/debian.js');
  try {
    debian = await import('../../scripts/lib/debian.js');
  } catch (e) {
    return { skip: `cannot load the Debian fetcher: ${(e as Error).message}` };
  }
  let bin: string;
  try {
    bin = join(await debian.fetchDebianPackage('qemu-utils'), 'usr/bin/qemu-img');
  } catch (e) {
    return { skip: `qemu-img is not installed and Debian's qemu-utils could not be fetched: ${(e as Error).message.split('\n')[0]}` };
  }
  if (!existsSync(bin)) return { skip: `qemu-utils has no usr/bin/qemu-img (${bin})` };
  const libDirs: string[] = [];
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (let round = 0; round < 4; round++) {
    const missing = missingLibs(bin, env);
    if (missing.length === 0) break;
    const pkgs = [...new Set(missing.map((so) => SONAME_PACKAGES[so]))];
    if (pkgs.includes(undefined as unknown as string)) {
      return { skip: `qemu-img needs shared libraries with no known Debian package: ${missing.filter((so) => !SONAME_PACKAGES[so]).join(', ')}` };
    }
    for (const p of pkgs) {
      try {
        const dir = await debian.fetchDebianPackage(p);
        for (const sub of ['usr/lib/x86_64-linux-gnu', 'lib/x86_64-linux-gnu']) {
          if (existsSync(join(dir, sub)) && !libDirs.includes(join(dir, sub))) libDirs.push(join(dir, sub));
        }
      } catch (e) {
        return { skip: `qemu-img needs ${p}, which could not be fetched: ${(e as Error).message.split('\n')[0]}` };
      }
    }
    env.LD_LIBRARY_PATH = [...libDirs, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  }
  const v = spawnSync(bin, ['--version'], { encoding: 'utf8', env });
  if (v.status !== 0) return { skip: `qemu-img from qemu-utils does not run here: ${(v.stderr || v.error?.message || '').trim().split('\n')[0]}` };
  return { path: bin, io: join(dirname(bin), 'qemu-io'), env };
}

export function runQemuImg(q: QemuImg, args: string[]): CliResult {
  const r = spawnSync(q.path, args, { encoding: 'utf8', env: q.env, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function runQemuIo(q: QemuImg, args: string[]): CliResult {
  const r = spawnSync(q.io, args, { encoding: 'utf8', env: q.env, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
