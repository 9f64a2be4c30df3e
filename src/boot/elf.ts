// ELF executables: enough to load a Linux vmlinux (ELF64, x86-64) or a multiboot kernel (usually
// ELF32, i386) into guest memory at its physical addresses, find its entry point, and read its
// notes (the PVH entry is one).
//
// Field offsets are those of the System V gABI, "ELF Header" and "Program Header" (also in
// /usr/include/elf.h); the file is untrusted, so every offset and size is checked against the
// file and the guest's memory before use.
import { BootError } from './boot-plan.js';
import { HIGH_RAM_START, MiB, MMIO_HOLE_START, type GuestMemory } from '../memory/guest-memory.js';

// e_ident (gABI, "ELF Identification").
const EI_CLASS = 4;
const EI_DATA = 5;
const EI_VERSION = 6;
export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
// e_type / e_machine values.
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const EM_386 = 3;
export const EM_X86_64 = 62;
// p_type values.
export const PT_LOAD = 1;
export const PT_NOTE = 4;
/** e_phnum's escape value (the real count is elsewhere); no kernel needs that many headers. */
const PN_XNUM = 0xffff;

/** Xen's ELF note for the 32-bit PVH entry point (xen/include/public/elfnote.h: XEN_ELFNOTE_PHYS32_ENTRY). */
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;

export interface ElfSegment {
  type: number;
  flags: number;
  offset: number;
  /** p_vaddr as a number: exact for ELF32 and below 2^53, the nearest double above (see vaddr64). */
  vaddr: number;
  /** p_vaddr exactly (a 64-bit kernel's virtual addresses lie near 2^64). */
  vaddr64: bigint;
  paddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

export interface ElfNote {
  name: string;
  type: number;
  desc: Uint8Array;
}

export interface ElfImage {
  class: 32 | 64;
  type: number;
  machine: number;
  /**
   * e_entry as a number (for a Linux x86-64 vmlinux, the physical address of startup_64); exact
   * for ELF32 and below 2^53, the nearest double above (see entry64).
   */
  entry: number;
  entry64: bigint;
  segments: ElfSegment[];
  bytes: Uint8Array;
}

/** True when the file starts with the ELF magic 7F 'E' 'L' 'F'. */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

function u64(view: DataView, at: number, what: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new BootError(`${what}: ELF value 0x${v.toString(16)} is out of range`);
  return Number(v);
}

/**
 * Parse and validate the ELF header and program headers.
 * @param what names the file in messages (usually its path)
 */
export function parseElf(bytes: Uint8Array, what: string): ElfImage {
  if (!isElf(bytes)) throw new BootError(`${what} is not an ELF file (no 7F 45 4C 46 magic)`);
  if (bytes.length < 52) throw new BootError(`${what}: ELF header is truncated`);
  const cls = bytes[EI_CLASS];
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) throw new BootError(`${what}: unknown ELF class ${cls}`);
  if (bytes[EI_DATA] !== ELFDATA2LSB) throw new BootError(`${what}: big-endian ELF, not an x86 kernel`);
  if (bytes[EI_VERSION] !== 1) throw new BootError(`${what}: unknown ELF version ${bytes[EI_VERSION]}`);
  const is64 = cls === ELFCLASS64;
  if (is64 && bytes.length < 64) throw new BootError(`${what}: ELF header is truncated`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = view.getUint16(16, true);
  const machine = view.getUint16(18, true);
  if (type !== ET_EXEC && type !== ET_DYN) {
    throw new BootError(`${what}: ELF type ${type} is not an executable (a kernel is ET_EXEC)`);
  }
  if (machine !== EM_X86_64 && machine !== EM_386) {
    throw new BootError(`${what}: ELF machine ${machine} is not x86 (EM_386 3 or EM_X86_64 62)`);
  }
  // Header layouts: ELF32 entry/phoff at 24/28, phentsize/phnum at 42/44;
  // ELF64 entry/phoff at 24/32, phentsize/phnum at 54/56.
  const entry64 = is64 ? view.getBigUint64(24, true) : BigInt(view.getUint32(24, true));
  const phoff = is64 ? u64(view, 32, what) : view.getUint32(28, true);
  const phentsize = view.getUint16(is64 ? 54 : 42, true);
  const phnum = view.getUint16(is64 ? 56 : 44, true);
  const minEnt = is64 ? 56 : 32;
  if (phnum === 0) throw new BootError(`${what}: ELF file has no program headers (not an executable image)`);
  if (phnum === PN_XNUM) throw new BootError(`${what}: ELF file has too many program headers`);
  if (phentsize < minEnt) throw new BootError(`${what}: ELF program header size ${phentsize} is too small`);
  if (phoff > bytes.length || phnum * phentsize > bytes.length - phoff) {
    throw new BootError(`${what}: ELF program headers lie outside the file (truncated?)`);
  }
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    // Program header: ELF32 type,offset,vaddr,paddr,filesz,memsz,flags,align (4 bytes each);
    // ELF64 type,flags (4 bytes) then offset,vaddr,paddr,filesz,memsz,align (8 bytes each).
    const seg: ElfSegment = is64
      ? {
          type: view.getUint32(at, true), flags: view.getUint32(at + 4, true),
          offset: u64(view, at + 8, what), vaddr: 0, vaddr64: view.getBigUint64(at + 16, true),
          paddr: u64(view, at + 24, what),
          filesz: u64(view, at + 32, what), memsz: u64(view, at + 40, what), align: u64(view, at + 48, what),
        }
      : {
          type: view.getUint32(at, true), offset: view.getUint32(at + 4, true),
          vaddr: 0, vaddr64: BigInt(view.getUint32(at + 8, true)), paddr: view.getUint32(at + 12, true),
          filesz: view.getUint32(at + 16, true), memsz: view.getUint32(at + 20, true),
          flags: view.getUint32(at + 24, true), align: view.getUint32(at + 28, true),
        };
    seg.vaddr = Number(seg.vaddr64);
    if (seg.type === PT_LOAD || seg.type === PT_NOTE) {
      if (seg.offset > bytes.length || seg.filesz > bytes.length - seg.offset) {
        throw new BootError(`${what}: ELF segment ${i} lies outside the file (truncated?)`);
      }
      if (seg.memsz < seg.filesz) throw new BootError(`${what}: ELF segment ${i} has memsz smaller than filesz`);
    }
    segments.push(seg);
  }
  if (!segments.some((s) => s.type === PT_LOAD && s.memsz > 0)) {
    throw new BootError(`${what}: ELF file has nothing to load (no PT_LOAD segment)`);
  }
  return { class: is64 ? 64 : 32, type, machine, entry: Number(entry64), entry64, segments, bytes };
}

/** The physical range the PT_LOAD segments occupy: [start, end). */
export function elfLoadExtent(elf: ElfImage): { start: number; end: number } {
  let start = Infinity;
  let end = 0;
  for (const s of elf.segments) {
    if (s.type !== PT_LOAD || s.memsz === 0) continue;
    start = Math.min(start, s.paddr);
    end = Math.max(end, s.paddr + s.memsz);
  }
  return { start, end };
}

/** The PT_LOAD segments with memory, each checked to lie in writable guest RAM (else a BootError saying how much the kernel needs). */
function loadableSegments(mem: GuestMemory, elf: ElfImage, what: string): ElfSegment[] {
  const loads = elf.segments.filter((s) => s.type === PT_LOAD && s.memsz > 0);
  const extent = elfLoadExtent(elf);
  for (const s of loads) {
    if (mem.writableOffset(s.paddr, s.memsz) >= 0) continue;
    const end = s.paddr + s.memsz;
    if (end > MMIO_HOLE_START && s.paddr < HIGH_RAM_START) {
      throw new BootError(
        `${what}: a segment loads at 0x${s.paddr.toString(16)}-0x${end.toString(16)}, ` +
          'in the MMIO hole below 4 GiB where the guest has no RAM',
      );
    }
    throw new BootError(
      `${what} needs more memory: it loads at 0x${extent.start.toString(16)}-0x${extent.end.toString(16)}, ` +
        `so the guest needs at least ${Math.ceil(extent.end / MiB)} MiB of RAM but has ` +
        `${Math.floor(mem.ramSize / MiB)} MiB; use --memory`,
    );
  }
  // Each fits. They may overlap, but not add up to more than all of RAM: a file that says so
  // (e_phnum goes up to 65,534) would have the loader copy for minutes.
  if (loads.reduce((n, s) => n + s.memsz, 0) > mem.ramSize) {
    throw new BootError(`${what}: its loadable segments add up to more than the guest's ${Math.floor(mem.ramSize / MiB)} MiB of RAM (a corrupt ELF file)`);
  }
  return loads;
}

/**
 * Copy every PT_LOAD segment to guest memory at its physical address (p_paddr) and zero the part
 * beyond the file data (memsz - filesz: .bss). Segments that are not entirely in writable RAM
 * give a BootError saying how much memory the kernel needs.
 */
export function loadElfSegments(mem: GuestMemory, elf: ElfImage, what: string): { start: number; end: number } {
  for (const s of loadableSegments(mem, elf, what)) {
    mem.write(s.paddr, elf.bytes.subarray(s.offset, s.offset + s.filesz));
    if (s.memsz > s.filesz) mem.fill(s.paddr + s.filesz, s.memsz - s.filesz, 0);
  }
  return elfLoadExtent(elf);
}

/** A range of guest-physical addresses, [gpa, gpa + len). */
export interface GpaRange { gpa: number; len: number }

const overlaps = (a: number, alen: number, b: number, blen: number): boolean => a < b + blen && b < a + alen;
/** Segments placeElfSegments moves in place, one after another; beyond that many they are copied out. */
const MAX_ORDERED_SEGMENTS = 64;

/**
 * loadElfSegments for an image that already lies in guest RAM at `imageGpa` (`elf.bytes` is that
 * RAM): a kernel payload decompressed straight into guest memory (linux-loader.ts). Each segment's
 * file bytes move to its p_paddr, which for most of a vmlinux is where they already are when
 * `imageGpa` is its first segment's p_paddr - p_offset. A segment moves only once no other
 * segment still to move has its bytes where it lands; should they wait on each other in a cycle,
 * those left are written from a copy of the image. Then the .bss parts are zeroed, and so is every byte of the
 * `scratch` ranges (the image, the decoder's input) that no segment holds: nothing of the
 * decompression is left in guest RAM outside the kernel.
 */
export function placeElfSegments(
  mem: GuestMemory, elf: ElfImage, imageGpa: number, scratch: readonly GpaRange[], what: string,
): { start: number; end: number } {
  const loads = loadableSegments(mem, elf, what);
  const src = (s: ElfSegment) => imageGpa + s.offset;
  let pending = loads.filter((s) => s.filesz > 0);
  const move = (s: ElfSegment) => {
    if (src(s) === s.paddr) return;
    const from = mem.gpaToOffset(src(s), s.filesz);
    const to = mem.writableOffset(s.paddr, s.filesz);
    if (from < 0 || to < 0) throw new BootError(`${what}: a segment's bytes lie outside guest RAM`);
    mem.bytes.copyWithin(to, from, from + s.filesz);
  };
  // Each pass looks at every pair: a vmlinux has four segments, but a file may claim thousands
  // (e_phnum up to 65,534), and those are all copied out below instead.
  while (pending.length <= MAX_ORDERED_SEGMENTS) {
    const free = pending.find((s) => !pending.some((o) => o !== s && overlaps(s.paddr, s.filesz, src(o), o.filesz)));
    if (!free) break;
    move(free);
    pending = pending.filter((s) => s !== free);
  }
  // What is left waits on itself in a cycle (or is too many to order): copy the image out once,
  // then write those segments from the copy.
  if (pending.length > 0) {
    const image = elf.bytes.slice();
    for (const s of pending) mem.write(s.paddr, image.subarray(s.offset, s.offset + s.filesz));
  }
  for (const s of loads) if (s.memsz > s.filesz) mem.fill(s.paddr + s.filesz, s.memsz - s.filesz, 0);
  for (const r of scratch) zeroOutside(mem, r, loads);
  return elfLoadExtent(elf);
}

/** Zero the parts of `r` that no segment's [p_paddr, p_paddr + p_memsz) covers. */
function zeroOutside(mem: GuestMemory, r: GpaRange, loads: readonly ElfSegment[]): void {
  const kept = loads.map((s) => [s.paddr, s.paddr + s.memsz] as const).sort((a, b) => a[0] - b[0]);
  let at = r.gpa;
  const end = r.gpa + r.len;
  for (const [from, to] of kept) {
    if (to <= at) continue;
    if (from >= end) break;
    if (from > at) mem.fill(at, from - at, 0);
    at = Math.max(at, to);
  }
  if (at < end) mem.fill(at, end - at, 0);
}

/**
 * The notes in the PT_NOTE segments. Each note is namesz, descsz, type (u32 each), the name and
 * then the descriptor, each padded to the segment's alignment (4, or 8 for some 64-bit notes;
 * gABI "Note Section").
 */
export function elfNotes(elf: ElfImage): ElfNote[] {
  const notes: ElfNote[] = [];
  const b = elf.bytes;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (const s of elf.segments) {
    if (s.type !== PT_NOTE) continue;
    const pad = s.align === 8 ? 8 : 4;
    const up = (n: number): number => Math.ceil(n / pad) * pad;
    let p = s.offset;
    const end = s.offset + s.filesz;
    while (end - p >= 12) {
      const namesz = view.getUint32(p, true);
      const descsz = view.getUint32(p + 4, true);
      const type = view.getUint32(p + 8, true);
      const nameAt = p + 12;
      if (namesz > end - nameAt) break; // malformed: stop rather than read past the segment
      const descAt = nameAt + up(namesz);
      if (descAt > end || descsz > end - descAt) break;
      // The name is NUL-terminated within namesz.
      let nameEnd = nameAt;
      while (nameEnd < nameAt + namesz && b[nameEnd] !== 0) nameEnd++;
      const name = String.fromCharCode(...b.subarray(nameAt, nameEnd));
      notes.push({ name, type, desc: b.subarray(descAt, descAt + descsz) });
      p = descAt + up(descsz);
    }
  }
  return notes;
}

/** The descriptor of the first note with this name and type, if any. */
export function findElfNote(elf: ElfImage, name: string, type: number): Uint8Array | undefined {
  return elfNotes(elf).find((n) => n.name === name && n.type === type)?.desc;
}

/**
 * The PVH entry point: the XEN_ELFNOTE_PHYS32_ENTRY note of owner "Xen". Linux emits it from
 * arch/x86/platform/pvh/head.S as a pointer-sized value (8 bytes on x86-64, 4 on i386).
 */
export function pvhEntry(elf: ElfImage): number | undefined {
  const d = findElfNote(elf, 'Xen', XEN_ELFNOTE_PHYS32_ENTRY);
  if (!d || d.length < 4) return undefined;
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const lo = v.getUint32(0, true);
  // A 32-bit entry: anything in the high half would be unusable in 32-bit protected mode.
  if (d.length >= 8 && v.getUint32(4, true) !== 0) return undefined;
  return lo;
}
