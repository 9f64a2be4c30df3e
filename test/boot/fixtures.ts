// Builders for small synthetic kernels (ELF images, bzImages) and helpers shared by the boot tests.
import { spawnSync } from 'node:child_process';
export { rng } from '../support/xorshift.js';

export interface SegSpec {
  paddr: number;
  vaddr?: bigint;
  data: Uint8Array;
  memsz?: number;
}

export interface NoteSpec {
  name: string;
  type: number;
  desc: Uint8Array;
}

function encodeNotes(notes: NoteSpec[]): Uint8Array {
  const parts: number[] = [];
  const pad4 = (a: number[]): void => { while (a.length % 4) a.push(0); };
  for (const n of notes) {
    const name = [...Buffer.from(n.name, 'latin1'), 0];
    const head = new DataView(new ArrayBuffer(12));
    head.setUint32(0, name.length, true);
    head.setUint32(4, n.desc.length, true);
    head.setUint32(8, n.type, true);
    parts.push(...new Uint8Array(head.buffer), ...name);
    pad4(parts);
    parts.push(...n.desc);
    pad4(parts);
  }
  return Uint8Array.from(parts);
}

/** A minimal ELF executable (ELF64 x86-64 or ELF32 i386) with the given segments and notes. */
export function makeElf(o: { cls: 32 | 64; entry: bigint | number; segments: SegSpec[]; notes?: NoteSpec[]; machine?: number }): Uint8Array {
  const is64 = o.cls === 64;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const notes = o.notes && o.notes.length ? encodeNotes(o.notes) : undefined;
  const phnum = o.segments.length + (notes ? 1 : 0);
  let off = ehsize + phnum * phentsize;
  const placed = o.segments.map((s) => {
    const at = off;
    off += s.data.length;
    return at;
  });
  const notesAt = off;
  if (notes) off += notes.length;
  const b = new Uint8Array(off);
  const v = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1]);
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, o.machine ?? (is64 ? 62 : 3), true);
  v.setUint32(20, 1, true);
  if (is64) {
    v.setBigUint64(24, BigInt(o.entry), true);
    v.setBigUint64(32, BigInt(ehsize), true);
    v.setUint16(52, ehsize, true);
    v.setUint16(54, phentsize, true);
    v.setUint16(56, phnum, true);
  } else {
    v.setUint32(24, Number(o.entry), true);
    v.setUint32(28, ehsize, true);
    v.setUint16(40, ehsize, true);
    v.setUint16(42, phentsize, true);
    v.setUint16(44, phnum, true);
  }
  const ph = (i: number, type: number, offset: number, vaddr: bigint, paddr: number, filesz: number, memsz: number, align: number): void => {
    const at = ehsize + i * phentsize;
    if (is64) {
      v.setUint32(at, type, true);
      v.setUint32(at + 4, 7, true);
      v.setBigUint64(at + 8, BigInt(offset), true);
      v.setBigUint64(at + 16, vaddr, true);
      v.setBigUint64(at + 24, BigInt(paddr), true);
      v.setBigUint64(at + 32, BigInt(filesz), true);
      v.setBigUint64(at + 40, BigInt(memsz), true);
      v.setBigUint64(at + 48, BigInt(align), true);
    } else {
      v.setUint32(at, type, true);
      v.setUint32(at + 4, offset, true);
      v.setUint32(at + 8, Number(vaddr), true);
      v.setUint32(at + 12, paddr, true);
      v.setUint32(at + 16, filesz, true);
      v.setUint32(at + 20, memsz, true);
      v.setUint32(at + 24, 7, true);
      v.setUint32(at + 28, align, true);
    }
  };
  o.segments.forEach((s, i) => {
    b.set(s.data, placed[i]);
    ph(i, 1, placed[i], s.vaddr ?? BigInt(s.paddr), s.paddr, s.data.length, s.memsz ?? s.data.length, 0x1000);
  });
  if (notes) {
    b.set(notes, notesAt);
    ph(o.segments.length, 4, notesAt, 0n, 0, notes.length, notes.length, 4);
  }
  return b;
}

/** A u64-LE descriptor (as Linux's PVH note on x86-64). */
export function u64Desc(v: number): Uint8Array {
  const d = new Uint8Array(8);
  new DataView(d.buffer).setBigUint64(0, BigInt(v), true);
  return d;
}

/** A vmlinux-like ELF64: text at 16 MiB (entry), data + bss after it, PVH note at +0x850. */
export function makeVmlinux(opts: { pvh?: boolean; vaddrEntry?: boolean } = {}): Uint8Array {
  const text = new Uint8Array(0x3000);
  for (let i = 0; i < text.length; i++) text[i] = (i * 7 + 3) & 0xff;
  const data = new Uint8Array(0x1000).fill(0xdd);
  const base = 0x1000000;
  return makeElf({
    cls: 64,
    entry: opts.vaddrEntry ? 0xffffffff81000000n : BigInt(base),
    segments: [
      { paddr: base, vaddr: 0xffffffff81000000n, data: text },
      { paddr: base + 0x200000, vaddr: 0xffffffff81200000n, data, memsz: 0x3000 },
    ],
    notes: opts.pvh === false ? [] : [
      { name: 'Xen', type: 6, desc: Buffer.from('linux\0') },
      { name: 'Xen', type: 18, desc: u64Desc(base + 0x850) },
    ],
  });
}

export interface BzSpec {
  payload: Uint8Array;
  version?: number;
  setupSects?: number;
  loadflags?: number;
  xloadflags?: number;
  initrdAddrMax?: number;
  kernelAlignment?: number;
  cmdlineSize?: number;
  prefAddress?: number;
  initSize?: number;
  kernelVersion?: string;
}

/**
 * A bzImage: setup sectors with the header (boot.rst offsets), then the protected-mode code:
 * 0x200 bytes of "code" (so the 64-bit entry at +0x200 is distinct) and the payload after it.
 */
export function makeBzImage(s: BzSpec): Uint8Array {
  const sects = s.setupSects ?? 4;
  const realSects = sects === 0 ? 4 : sects;
  const pm = (realSects + 1) * 512;
  const payloadOffset = 0x400;
  const b = new Uint8Array(pm + payloadOffset + s.payload.length);
  const v = new DataView(b.buffer);
  b[0x1f1] = sects;
  v.setUint16(0x1fa, 0xffff, true); // vid_mode NORMAL_VGA
  v.setUint16(0x1fe, 0xaa55, true);
  b[0x200] = 0xeb; // jmp short over the header
  b[0x201] = 0x6a; // header ends at 0x26c, as in 6.1 kernels
  b.set(Buffer.from('HdrS', 'latin1'), 0x202);
  v.setUint16(0x206, s.version ?? 0x020f, true);
  if (s.kernelVersion) {
    const at = 0x400;
    b.set(Buffer.from(s.kernelVersion + '\0', 'latin1'), at);
    v.setUint16(0x20e, at - 0x200, true);
  }
  b[0x211] = s.loadflags ?? 1;
  v.setUint32(0x214, 0x100000, true);
  v.setUint32(0x22c, s.initrdAddrMax ?? 0x7fffffff, true);
  v.setUint32(0x230, s.kernelAlignment ?? 0x200000, true);
  b[0x234] = 1;
  v.setUint16(0x236, s.xloadflags ?? 0x7f, true);
  v.setUint32(0x238, s.cmdlineSize ?? 2047, true);
  v.setUint32(0x248, payloadOffset, true);
  v.setUint32(0x24c, s.payload.length, true);
  v.setBigUint64(0x258, BigInt(s.prefAddress ?? 0x1000000), true);
  v.setUint32(0x260, s.initSize ?? 0x800000, true);
  for (let i = 0; i < payloadOffset; i++) b[pm + i] = 0x90; // "code"
  b.set(s.payload, pm + payloadOffset);
  return b;
}

/**
 * A plain greedy LZ4 block compressor (doc/lz4_Block_format.md): 4-byte hash matches, any
 * offset up to 65535, overlapping matches included; the block ends with a literals-only sequence.
 */
export function lz4Block(data: Uint8Array, maxOffset = 65535): Uint8Array {
  const out: number[] = [];
  const length = (n: number) => { for (; n >= 255; n -= 255) out.push(255); out.push(n); };
  const sequence = (from: number, to: number, offset: number, len: number) => {
    const lit = to - from;
    out.push((Math.min(lit, 15) << 4) | (len ? Math.min(len - 4, 15) : 0));
    if (lit >= 15) length(lit - 15);
    for (let k = from; k < to; k++) out.push(data[k]!);
    if (!len) return;
    out.push(offset & 0xff, offset >> 8);
    if (len - 4 >= 15) length(len - 4 - 15);
  };
  const seen = new Map<number, number>();
  let anchor = 0;
  let i = 0;
  while (i + 4 <= data.length) {
    const key = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    const cand = seen.get(key);
    seen.set(key, i);
    if (cand !== undefined && i - cand <= maxOffset) {
      let len = 4;
      while (i + len < data.length && data[cand + len] === data[i + len]) len++;
      sequence(anchor, i, i - cand, len);
      i += len;
      anchor = i;
    } else {
      i++;
    }
  }
  sequence(anchor, data.length, 0, 0);
  return Uint8Array.from(out);
}

/** An LZ4 legacy frame (lz4-legacy.ts): the magic, then each block with its u32-LE size. */
export function lz4LegacyFrame(blocks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(4 + blocks.reduce((n, b) => n + 4 + b.length, 0));
  const v = new DataView(out.buffer);
  v.setUint32(0, 0x184c2102, true);
  let at = 4;
  for (const b of blocks) {
    v.setUint32(at, b.length, true);
    out.set(b, at + 4);
    at += 4 + b.length;
  }
  return out;
}

/** Append the u32-LE size, as the kernel build's size_append does. */
export function withSizeTrailer(compressed: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(compressed.length + 4);
  out.set(compressed);
  new DataView(out.buffer).setUint32(compressed.length, size, true);
  return out;
}

/** Deterministic compressible data: words from a small vocabulary chosen by an LCG. */
export function sampleData(size: number, seed = 1): Uint8Array {
  const words = ['mov', 'rax', 'call', 'ret', 'push', 'rbp', 'kernel', 'page', '\n', ' ', 'lz4', '0x1000'];
  const out = new Uint8Array(size);
  let x = seed >>> 0;
  let i = 0;
  while (i < size) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    if ((x >>> 28) === 0) {
      out[i++] = x & 0xff; // an occasional random byte keeps the matches short and varied
      continue;
    }
    const w = words[(x >>> 8) % words.length];
    for (let k = 0; k < w.length && i < size; k++) out[i++] = w.charCodeAt(k);
  }
  return out;
}

/** Whether a command-line tool runs here; the reason when it does not. */
export function toolMissing(name: string): string | undefined {
  const r = spawnSync(name, ['--version'], { stdio: 'ignore' });
  if (r.error) return `${name} not installed: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message}`;
  return undefined;
}

/** Run a tool with `input` on stdin and return its stdout. */
export function runTool(name: string, args: string[], input: Uint8Array): Uint8Array {
  const r = spawnSync(name, args, { input, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`${name} ${args.join(' ')} failed: ${r.stderr?.toString()}`);
  return new Uint8Array(r.stdout);
}

