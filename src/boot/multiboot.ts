// Multiboot v1 loader (the "Multiboot Specification version 0.6.96", cited below as MB §x).
// Used for kvm-unit-tests' `.flat` files (32-bit ELF with a multiboot header whose flags are 0)
// and any other multiboot kernel: load the image, hand over modules, a command line and a memory
// map in the multiboot information structure, and enter in 32-bit protected mode.
//
// Guest memory used:
//   MULTIBOOT_INFO_ADDR (0x6000): the information structure, then the memory map and the boot
//       loader name (a few hundred bytes).
//   the kernel's own segments, where its ELF program headers (or a.out kludge fields) say.
//   above the kernel (and never below 1 MiB): each module page-aligned, then the module list
//       and the command-line strings. QEMU lays modules and strings out the same way, and
//       kvm-unit-tests copies them out before its allocator reuses that memory.
import { protectedModeState } from '../accel/cpu-state.js';
import { type GuestMemory, MMIO_HOLE_START } from '../memory/guest-memory.js';
import { BIOS_AREA_END, EBDA_START, MULTIBOOT_INFO_ADDR } from '../vmm/platform-layout.js';
import { BootError, type BootPlan } from './boot-plan.js';
import { buildE820 } from './e820.js';
import { ELFCLASS64, EM_386, PT_LOAD, isElf, parseElf } from './elf.js';

/** The header's magic (MB §3.1.2). */
export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
/** What the loader leaves in EAX (MB §3.2). */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
/** "The Multiboot header must be contained completely within the first 8192 bytes of the OS image, and must be longword (32-bit) aligned" (MB §3.1.1). */
export const MULTIBOOT_SEARCH_LIMIT = 8192;

// Header flags (MB §3.1.2). Bits 0-15 are requirements a loader must meet or refuse; 16-31 optional.
export const MB_HEADER_PAGE_ALIGN = 1 << 0; // modules page-aligned (we always do)
export const MB_HEADER_MEMORY_INFO = 1 << 1; // mem_* and mmap_* (we always give them)
export const MB_HEADER_VIDEO_MODE = 1 << 2; // a video mode table: we have no graphics yet
export const MB_HEADER_AOUT_KLUDGE = 1 << 16; // load from the header's address fields, not ELF
const MB_HEADER_KNOWN_REQUIRED = MB_HEADER_PAGE_ALIGN | MB_HEADER_MEMORY_INFO | MB_HEADER_VIDEO_MODE;

// Information structure flags (MB §3.3).
export const MB_INFO_MEMORY = 1 << 0;
export const MB_INFO_CMDLINE = 1 << 2;
export const MB_INFO_MODS = 1 << 3;
export const MB_INFO_MEM_MAP = 1 << 6;
export const MB_INFO_BOOT_LOADER_NAME = 1 << 9;

/** Offsets in the information structure (MB §3.3, "Boot information format"). */
export const MB_INFO = {
  flags: 0,
  memLower: 4,
  memUpper: 8,
  bootDevice: 12,
  cmdline: 16,
  modsCount: 20,
  modsAddr: 24,
  mmapLength: 44,
  mmapAddr: 48,
  bootLoaderName: 64,
} as const;
/** The structure is 116 bytes up to the end of the framebuffer fields (MB §3.3); we reserve 128. */
export const MB_INFO_SIZE = 116;
const MB_INFO_RESERVED = 128;
/** A module entry: mod_start, mod_end, string, reserved (MB §3.3). */
export const MB_MODULE_ENTRY_SIZE = 16;
/**
 * A memory map entry: size (of the rest, 20), base_addr (8), length (8), type (4) (MB §3.3).
 * Types are 1 for available RAM and anything else reserved, so the e820 types pass through as is.
 */
export const MB_MMAP_ENTRY_SIZE = 24;

const PAGE = 4096;
const BOOT_LOADER_NAME = 'tsvm';

export interface MultibootHeader {
  /** Byte offset of the header in the image. */
  offset: number;
  flags: number;
  /** The a.out kludge address fields (MB §3.1.3), present when flags bit 16 is set. */
  headerAddr: number;
  loadAddr: number;
  loadEndAddr: number;
  bssEndAddr: number;
  entryAddr: number;
}

function u32(b: Uint8Array, off: number): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}

/** Offsets of every aligned magic in the search window, valid checksum or not. */
function magicOffsets(bytes: Uint8Array): number[] {
  const out: number[] = [];
  const end = Math.min(bytes.length, MULTIBOOT_SEARCH_LIMIT) - 12;
  for (let off = 0; off <= end; off += 4) if (u32(bytes, off) === MULTIBOOT_HEADER_MAGIC) out.push(off);
  return out;
}

const checksumOk = (bytes: Uint8Array, off: number): boolean =>
  ((MULTIBOOT_HEADER_MAGIC + u32(bytes, off + 4) + u32(bytes, off + 8)) >>> 0) === 0; // MB §3.1.2 "checksum"

/** The first multiboot header (magic and a checksum that sums to zero) in the first 8 KiB, or null. */
export function findMultibootHeader(bytes: Uint8Array): MultibootHeader | null {
  for (const off of magicOffsets(bytes)) {
    if (!checksumOk(bytes, off)) continue;
    const flags = u32(bytes, off + 4);
    const field = (i: number): number => (off + 12 + 4 * i + 4 <= bytes.length ? u32(bytes, off + 12 + 4 * i) : 0);
    return {
      offset: off, flags,
      headerAddr: field(0), loadAddr: field(1), loadEndAddr: field(2), bssEndAddr: field(3), entryAddr: field(4),
    };
  }
  return null;
}

export function isMultiboot(bytes: Uint8Array): boolean {
  return findMultibootHeader(bytes) !== null;
}

export interface MultibootModule {
  data: Uint8Array;
  /** The module's string (by convention its file name and arguments). */
  cmdline: string;
}

export interface MultibootOptions {
  kernel: Uint8Array;
  /** The kernel's file name: it becomes argv[0] of the command line, as QEMU passes it. */
  kernelPath: string;
  /** The user's --append text. */
  cmdline: string;
  modules?: MultibootModule[];
}

interface Segment {
  /** Guest-physical load address. */
  paddr: number;
  /** Bytes copied from the file... */
  data: Uint8Array;
  /** ...then zeroed up to memsz (bss). */
  memsz: number;
  vaddr: number;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** PT_LOAD segments of a 32-bit i386 ELF (parsed by elf.ts) and its entry point. */
function elfSegments(b: Uint8Array, path: string): { segments: Segment[]; entry: number } {
  if (b.length > 4 && b[4] === ELFCLASS64) {
    throw new BootError(
      `${path}: a 64-bit ELF cannot be loaded through multiboot v1, which takes 32-bit ELF only ` +
        '(kvm-unit-tests makes its .flat files with objcopy -O elf32-i386); boot it as a Linux kernel instead',
    );
  }
  const elf = parseElf(b, path);
  // QEMU's multiboot loader, like GRUB's, takes i386 images only.
  if (elf.machine !== EM_386) throw new BootError(`${path}: ELF machine ${elf.machine} is not i386 (EM_386 = 3)`);
  const segments: Segment[] = elf.segments
    .filter((s) => s.type === PT_LOAD && s.memsz > 0)
    .map((s) => ({ paddr: s.paddr, vaddr: Number(s.vaddr), memsz: s.memsz, data: b.subarray(s.offset, s.offset + s.filesz) }));
  const entry = Number(elf.entry); // a 32-bit ELF's addresses all fit a number
  // Segments load at their physical addresses (p_paddr). An entry given as a virtual address of a
  // segment linked elsewhere is translated to where that segment really is, as GRUB does.
  const inPhys = segments.some((s) => entry >= s.paddr && entry < s.paddr + s.memsz);
  const byVirt = segments.find((s) => entry >= s.vaddr && entry < s.vaddr + s.memsz);
  return { segments, entry: !inPhys && byVirt ? entry - byVirt.vaddr + byVirt.paddr : entry };
}

/** The a.out kludge (MB §3.1.3): one flat range of the file at load_addr, bss up to bss_end_addr. */
function kludgeSegments(b: Uint8Array, h: MultibootHeader, path: string): { segments: Segment[]; entry: number } {
  const where = `${path}: multiboot header address fields`;
  if (h.offset + 32 > b.length) throw new BootError(`${where} are cut off by the end of the file`);
  if (h.loadAddr > h.headerAddr) throw new BootError(`${where}: load_addr ${hex(h.loadAddr)} is above header_addr ${hex(h.headerAddr)}`);
  const fileStart = h.offset - (h.headerAddr - h.loadAddr);
  if (fileStart < 0) throw new BootError(`${where}: header_addr - load_addr points before the start of the file`);
  if (h.loadEndAddr !== 0 && h.loadEndAddr < h.loadAddr) throw new BootError(`${where}: load_end_addr is below load_addr`);
  const size = h.loadEndAddr === 0 ? b.length - fileStart : h.loadEndAddr - h.loadAddr;
  if (fileStart + size > b.length) throw new BootError(`${where}: load_end_addr reaches past the end of the file`);
  const loadEnd = h.loadAddr + size;
  if (h.bssEndAddr !== 0 && h.bssEndAddr < loadEnd) throw new BootError(`${where}: bss_end_addr is below the end of the loaded image`);
  const memsz = (h.bssEndAddr === 0 ? loadEnd : h.bssEndAddr) - h.loadAddr;
  return {
    segments: [{ paddr: h.loadAddr, vaddr: h.loadAddr, memsz, data: b.subarray(fileStart, fileStart + size) }],
    entry: h.entryAddr,
  };
}

const overlaps = (a: number, alen: number, b: number, blen: number): boolean => a < b + blen && b < a + alen;

function encodeString(s: string, what: string): Uint8Array {
  if (s.includes('\0')) throw new BootError(`${what} contains a NUL character`);
  const enc = new TextEncoder().encode(s);
  const out = new Uint8Array(enc.length + 1);
  out.set(enc);
  return out;
}

/**
 * Load a multiboot v1 kernel and its modules into guest memory and build the information
 * structure. Returns vCPU 0's entry state: flat 32-bit protected mode, paging off, interrupts
 * off, EAX = 0x2BADB002, EBX = the information structure (MB §3.2).
 */
export function loadMultiboot(mem: GuestMemory, opts: MultibootOptions): BootPlan {
  const { kernel, kernelPath: path } = opts;
  const modules = opts.modules ?? [];
  const header = findMultibootHeader(kernel);
  if (!header) {
    const bad = magicOffsets(kernel);
    if (bad.length > 0) {
      throw new BootError(`${path}: the multiboot header at offset ${hex(bad[0])} has a bad checksum (magic + flags + checksum must be 0 mod 2^32)`);
    }
    throw new BootError(`${path}: no multiboot header (magic 0x1BADB002) in the first ${MULTIBOOT_SEARCH_LIMIT} bytes: not a multiboot kernel`);
  }
  const unknown = header.flags & 0xffff & ~MB_HEADER_KNOWN_REQUIRED;
  if (unknown !== 0) {
    throw new BootError(`${path}: the multiboot header requires features tsvm does not provide (flags bits ${hex(unknown)})`);
  }

  let image: { segments: Segment[]; entry: number };
  if (header.flags & MB_HEADER_AOUT_KLUDGE) image = kludgeSegments(kernel, header, path);
  else if (isElf(kernel)) image = elfSegments(kernel, path);
  else throw new BootError(`${path}: not an ELF file, and its multiboot header gives no load addresses (flags bit 16 clear)`);

  // Our low block: the information structure, the memory map and the loader name.
  // The memory map is the e820 map every boot path gives (RAM 0-0x9FC00, reserved to 1 MiB, RAM above).
  const mmap = buildE820(mem);
  const mmapAddr = MULTIBOOT_INFO_ADDR + MB_INFO_RESERVED;
  const nameAddr = mmapAddr + mmap.length * MB_MMAP_ENTRY_SIZE;
  const name = encodeString(BOOT_LOADER_NAME, 'boot loader name');
  const lowEnd = nameAddr + name.length;
  const lowRamEnd = Math.min(mem.ramSize, MMIO_HOLE_START);

  let kernelEnd = 0;
  let kernelStart = Infinity;
  for (const s of image.segments) {
    const end = s.paddr + s.memsz;
    const range = `${hex(s.paddr)}-${hex(end)}`;
    if (end > 2 ** 32) throw new BootError(`${path}: segment ${range} reaches past 4 GiB`);
    if (mem.writableOffset(s.paddr, s.memsz) < 0) {
      throw new BootError(`${path}: segment ${range} is outside guest RAM (${Math.floor(mem.ramSize / 1024 / 1024)} MiB); give the VM more memory`);
    }
    if (overlaps(s.paddr, s.memsz, EBDA_START, BIOS_AREA_END - EBDA_START)) {
      throw new BootError(`${path}: segment ${range} overlaps the reserved BIOS area ${hex(EBDA_START)}-${hex(BIOS_AREA_END)}`);
    }
    if (overlaps(s.paddr, s.memsz, MULTIBOOT_INFO_ADDR, lowEnd - MULTIBOOT_INFO_ADDR)) {
      throw new BootError(`${path}: segment ${range} overlaps the multiboot information at ${hex(MULTIBOOT_INFO_ADDR)}-${hex(lowEnd)}`);
    }
    kernelEnd = Math.max(kernelEnd, end);
    kernelStart = Math.min(kernelStart, s.paddr);
  }
  if (!image.segments.some((s) => image.entry >= s.paddr && image.entry < s.paddr + s.memsz)) {
    throw new BootError(`${path}: entry point ${hex(image.entry)} is outside the loaded image`);
  }

  // High block: modules (page-aligned, MB §3.1.2 bit 0), then the module list and strings.
  const cmdline = encodeString(opts.cmdline === '' ? path : `${path} ${opts.cmdline}`, 'kernel command line');
  const modStrings = modules.map((m, i) => encodeString(m.cmdline, `module ${i} command line`));
  let cursor = Math.max(kernelEnd, BIOS_AREA_END);
  const modAddrs: number[] = [];
  for (const m of modules) {
    cursor = Math.ceil(cursor / PAGE) * PAGE;
    modAddrs.push(cursor);
    cursor += m.data.length;
  }
  cursor = Math.ceil(cursor / 16) * 16;
  const modsAddr = cursor;
  cursor += modules.length * MB_MODULE_ENTRY_SIZE;
  const cmdlineAddr = cursor;
  cursor += cmdline.length;
  const modStringAddrs = modStrings.map((s) => {
    const a = cursor;
    cursor += s.length;
    return a;
  });
  if (cursor > lowRamEnd) {
    throw new BootError(
      `${path}: the kernel, ${modules.length} module(s) and command lines need RAM up to ${hex(cursor)}, ` +
        `but the guest's RAM below 4 GiB ends at ${hex(lowRamEnd)}; give the VM more memory`,
    );
  }

  // Write everything. Zero what we own first: memory may hold a previous boot's contents.
  for (const s of image.segments) {
    mem.write(s.paddr, s.data);
    mem.fill(s.paddr + s.data.length, s.memsz - s.data.length, 0);
  }
  modules.forEach((m, i) => mem.write(modAddrs[i], m.data));
  mem.fill(modsAddr, cursor - modsAddr, 0);
  modules.forEach((m, i) => {
    const e = modsAddr + i * MB_MODULE_ENTRY_SIZE;
    mem.writeU32(e, modAddrs[i]); // mod_start
    mem.writeU32(e + 4, modAddrs[i] + m.data.length); // mod_end (first byte past the module)
    mem.writeU32(e + 8, modStringAddrs[i]); // string
  });
  mem.write(cmdlineAddr, cmdline);
  modStrings.forEach((s, i) => mem.write(modStringAddrs[i], s));

  const info = MULTIBOOT_INFO_ADDR;
  mem.fill(info, lowEnd - info, 0);
  let flags = MB_INFO_MEMORY | MB_INFO_CMDLINE | MB_INFO_MEM_MAP | MB_INFO_BOOT_LOADER_NAME;
  // mem_lower: KiB from 0 (at most 640); mem_upper: KiB from 1 MiB to the first hole (MB §3.3).
  mem.writeU32(info + MB_INFO.memLower, Math.floor(Math.min(mem.ramSize, EBDA_START) / 1024));
  mem.writeU32(info + MB_INFO.memUpper, Math.floor(Math.max(0, lowRamEnd - BIOS_AREA_END) / 1024));
  mem.writeU32(info + MB_INFO.cmdline, cmdlineAddr);
  if (modules.length > 0) {
    flags |= MB_INFO_MODS;
    mem.writeU32(info + MB_INFO.modsCount, modules.length);
    mem.writeU32(info + MB_INFO.modsAddr, modsAddr);
  }
  mmap.forEach((e, i) => {
    const a = mmapAddr + i * MB_MMAP_ENTRY_SIZE;
    // "size" counts the bytes after itself; mmap_addr points at the first entry's size field.
    mem.writeU32(a, MB_MMAP_ENTRY_SIZE - 4);
    mem.writeU64(a + 4, e.addr);
    mem.writeU64(a + 12, e.size);
    mem.writeU32(a + 20, e.type);
  });
  mem.writeU32(info + MB_INFO.mmapLength, mmap.length * MB_MMAP_ENTRY_SIZE);
  mem.writeU32(info + MB_INFO.mmapAddr, mmapAddr);
  mem.write(nameAddr, name);
  mem.writeU32(info + MB_INFO.bootLoaderName, nameAddr);
  mem.writeU32(info + MB_INFO.flags, flags);

  const cpu = protectedModeState(BigInt(image.entry));
  cpu.regs.rax = BigInt(MULTIBOOT_BOOTLOADER_MAGIC);
  cpu.regs.rbx = BigInt(info);
  const format = header.flags & MB_HEADER_AOUT_KLUDGE ? 'a.out-kludge' : 'ELF32';
  const notes = header.flags & MB_HEADER_VIDEO_MODE ? ' (its video mode request is ignored: no graphics yet)' : '';
  return {
    cpu,
    summary:
      `multiboot ${format} kernel ${path} at ${hex(kernelStart)}-${hex(kernelEnd)}, entry ${hex(image.entry)}, ` +
      `${modules.length} module(s)${notes}`,
  };
}
