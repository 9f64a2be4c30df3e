// Loading a Linux kernel into guest memory and describing the vCPU state to start it in.
//
// Three ways in, chosen by `mode`:
//  - 'elf' (default): decompress a bzImage's payload on the host, load the ELF vmlinux's PT_LOAD
//    segments at their physical addresses, and enter its e_entry in 64-bit mode with RSI = zero
//    page — exactly what the kernel's own decompressor does when it jumps to the kernel proper.
//    For x86-64, arch/x86/kernel/vmlinux.lds.S says ENTRY(phys_startup_64) with
//    phys_startup_64 = startup_64 - LOAD_OFFSET, so e_entry is the physical address of
//    startup_64 (arch/x86/kernel/head_64.S), whose contract is "64-bit mode, identity-mapped
//    page tables covering the kernel, %rsi = physical address of boot_params".
//  - 'pvh': same loading, but enter at the XEN_ELFNOTE_PHYS32_ENTRY note in 32-bit protected
//    mode, paging off, EBX = hvm_start_info (Xen public/arch-x86/hvm/start_info.h, version 1).
//  - 'bzimage-64': load the bzImage's protected-mode code as it is and enter its 64-bit entry at
//    load address + 0x200 (boot.rst, "64-bit Boot Protocol"), so the guest decompresses itself.
// An uncompressed ELF vmlinux is accepted too ('elf' or 'pvh').
//
// Guest-physical layout (vmm/platform-layout.ts): GDT at BOOT_GDT_ADDR, hvm_start_info at
// PVH_START_INFO_ADDR, zero page at BOOT_PARAMS_ADDR, a boot stack in the page below the page
// tables, page tables at BOOT_PAGE_TABLES_ADDR, command line at BOOT_CMDLINE_ADDR, the setup_data
// list (an RNG seed) at BOOT_SETUP_DATA_ADDR, the kernel
// from its load address (16 MiB for distribution kernels), the initrd as high as the kernel allows.
import { BootError, type BootPlan } from './boot-plan.js';
import { longModeState, protectedModeState, type CpuState } from '../accel/cpu-state.js';
import { GiB, MiB, type GuestMemory } from '../memory/guest-memory.js';
import {
  BIOS_AREA_END, BOOT_CMDLINE_ADDR, BOOT_PAGE_TABLES_ADDR, BOOT_PARAMS_ADDR, BOOT_SETUP_DATA_ADDR, PVH_START_INFO_ADDR,
} from '../vmm/platform-layout.js';
import { randomFillSync } from 'node:crypto';
import {
  compressionName, decompressKernelPayload, detectCompression, splitKernelPayload, type CompressionFormat,
} from './decompress/index.js';
import { decompressLz4LegacyInto } from './decompress/lz4-legacy.js';
import {
  EM_X86_64, elfLoadExtent, isElf, loadElfSegments, parseElf, placeElfSegments, pvhEntry, PT_LOAD, type ElfImage, type GpaRange,
} from './elf.js';
import { buildE820, E820_MAX_ZEROPAGE, writeE820ZeroPage, type E820Entry } from './e820.js';
import { setupLongModePaging, writeBootGdt } from './page-tables.js';
import {
  BOOT_FLAG, CAN_USE_HEAP, HDR_BOOT_FLAG, HDR_CMD_LINE_PTR, HDR_CMDLINE_SIZE, HDR_HEADER, HDR_HEAP_END_PTR,
  HDR_INITRD_ADDR_MAX, HDR_KERNEL_ALIGNMENT, HDR_LOADFLAGS, HDR_RAMDISK_IMAGE, HDR_RAMDISK_SIZE, HDR_SETUP_DATA, HDR_SETUP_SECTS,
  HDR_TYPE_OF_LOADER, HDR_VERSION, HDRS_MAGIC, KASLR_FLAG, LOADED_HIGH, parseSetupHeader, payloadOf,
  protocolString, XLF_KERNEL_64, type SetupHeader,
} from './setup-header.js';

export type LinuxBootMode = 'elf' | 'pvh' | 'bzimage-64';

export interface LinuxLoadOptions {
  kernelPath: string;
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline: string;
  /** Where the ACPI RSDP is, when the VMM built ACPI tables. */
  rsdpAddr?: number;
  mode?: LinuxBootMode;
  /** Extra e820 ranges (reserved MMIO, ACPI tables outside the BIOS area). */
  e820Extra?: readonly E820Entry[];
}

/** Where things went, for the log and for tests. */
export interface LinuxLayout {
  mode: LinuxBootMode;
  entry: number;
  kernelStart: number;
  /** End of the memory the kernel claims (image, bss, and for a bzImage its init_size). */
  kernelEnd: number;
  cmdlineAddr: number;
  initrdAddr?: number;
  initrdSize?: number;
  /** Zero page (64-bit entries) or hvm_start_info (PVH). */
  bootInfoAddr: number;
  e820: E820Entry[];
  payloadFormat?: CompressionFormat;
  decompressMs?: number;
}

export interface LinuxBootPlan extends BootPlan {
  layout: LinuxLayout;
}

// ---- Zero page (Documentation/arch/x86/zero-page.rst) ----
export const ZP_ACPI_RSDP_ADDR = 0x070;
export const ZP_EXT_RAMDISK_IMAGE = 0x0c0;
export const ZP_EXT_RAMDISK_SIZE = 0x0c4;
export const ZP_EXT_CMD_LINE_PTR = 0x0c8;
export const ZP_E820_ENTRIES = 0x1e8;
/** Where the setup header starts, in the file and in the zero page. */
export const ZP_SETUP_HEADER = HDR_SETUP_SECTS;
export const ZP_E820_TABLE = 0x2d0;
export const ZERO_PAGE_SIZE = 4096;

// ---- setup_data (boot.rst, "Details of Header Fields": setup_data; arch/x86/include/uapi/asm/setup_data.h) ----
/** struct setup_data: next (u64 physical address, 0 ends the list), type (u32), len (u32), data[len]. */
export const SETUP_DATA_HEADER_SIZE = 16;
/** SETUP_RNG_SEED: bytes the kernel mixes into its entropy pool at boot (Linux 5.20+). */
export const SETUP_RNG_SEED = 9;
/** The seed's length: 256 bits, what Linux's RNG needs before it calls itself ready (POOL_READY_BITS). */
export const RNG_SEED_BYTES = 32;

// ---- hvm_start_info (Xen public/arch-x86/hvm/start_info.h) ----
export const XEN_HVM_START_MAGIC = 0x336ec578;
/** Version 1 added memmap_paddr/memmap_entries; Linux reads the map from there. */
export const PVH_START_INFO_VERSION = 1;
/** struct hvm_start_info: magic, version, flags, nr_modules (u32); modlist, cmdline, rsdp, memmap (u64); memmap_entries, reserved (u32). */
export const PVH_START_INFO_SIZE = 56;
/** struct hvm_modlist_entry: paddr, size, cmdline_paddr, reserved (u64 each). */
export const PVH_MODLIST_ENTRY_SIZE = 32;
/** struct hvm_memmap_table_entry: addr, size (u64), type, reserved (u32). */
export const PVH_MEMMAP_ENTRY_SIZE = 24;
/** Our placement inside the start-info page: the module list, then the memory map. */
export const PVH_MODLIST_OFFSET = 0x40;
export const PVH_MEMMAP_OFFSET = 0x80;

/** x86's COMMAND_LINE_SIZE (arch/x86/include/asm/setup.h) less the NUL, for a vmlinux without a header. */
const DEFAULT_CMDLINE_SIZE = 2047;
/** The command line area is 64 KiB (platform-layout.ts). */
const CMDLINE_AREA = 0x10000;
/** The highest initrd address kernels since 2.6.x accept (boot.rst: initrd_addr_max). */
const DEFAULT_INITRD_ADDR_MAX = 0x7fffffff;
/** Where a relocatable bzImage goes when it states no preference (boot.rst: LOAD_PHYSICAL_ADDR default). */
const DEFAULT_KERNEL_ADDR = 16 * MiB;
/**
 * Top of a small stack for the 64-bit entry: the page between the zero page and the page tables
 * (0x8000-0x8FFF), which the platform layout leaves free. Neither entry point needs one by
 * protocol, but a valid RSP costs nothing and keeps an early push from faulting.
 */
export const BOOT_STACK_TOP = BOOT_PAGE_TABLES_ADDR;
if (BOOT_PARAMS_ADDR + ZERO_PAGE_SIZE > BOOT_STACK_TOP - 4096) throw new Error('boot stack overlaps the zero page');

const PAGE = 4096;
const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;
const alignDown = (n: number, a: number): number => Math.floor(n / a) * a;
const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * Choose the initrd's address: as high as possible, page aligned, ending at or below
 * min(initrd_addr_max + 1, end of low RAM, 4 GiB), and above the kernel's memory.
 */
export function placeInitrd(o: {
  size: number;
  kernelEnd: number;
  lowRamEnd: number;
  /** Highest address the initrd may occupy (inclusive), from the setup header. */
  initrdAddrMax: number;
}): number {
  const top = Math.min(o.initrdAddrMax + 1, o.lowRamEnd, 4 * GiB);
  const addr = alignDown(top - o.size, PAGE);
  const floor = Math.max(alignUp(o.kernelEnd, PAGE), BIOS_AREA_END);
  if (o.size <= 0 || addr < floor) {
    const needMiB = Math.ceil((floor + alignUp(o.size, PAGE)) / MiB);
    if (needMiB * MiB > o.initrdAddrMax + 1) {
      throw new BootError(
        `the initrd (${Math.ceil(o.size / MiB)} MiB) does not fit between the kernel (ending at ${hex(o.kernelEnd)}) ` +
          `and the kernel's initrd limit ${hex(o.initrdAddrMax)}; use a smaller initrd`,
      );
    }
    throw new BootError(
      `guest memory too small for kernel and initrd: need at least ${needMiB} MiB, use --memory`,
    );
  }
  return addr;
}

/** Encode and check the command line; returns the bytes including the terminating NUL. */
function encodeCmdline(cmdline: string, max: number, path: string): Uint8Array {
  if (cmdline.includes('\0')) throw new BootError('the kernel command line contains a NUL character');
  const text = new TextEncoder().encode(cmdline);
  const limit = Math.min(max, CMDLINE_AREA - 1);
  if (text.length > limit) {
    throw new BootError(
      `the kernel command line is ${text.length} bytes; ${path} accepts at most ${limit} (cmdline_size)`,
    );
  }
  const out = new Uint8Array(text.length + 1);
  out.set(text);
  return out;
}

/**
 * A setup header for a kernel that came without one (a bare vmlinux): the fields the kernel
 * proper reads (boot.rst); the rest stays zero as the protocol allows.
 */
function synthesizedHeader(): Uint8Array {
  const h = new Uint8Array(0x270);
  const v = new DataView(h.buffer);
  v.setUint16(HDR_BOOT_FLAG, BOOT_FLAG, true);
  v.setUint32(HDR_HEADER, HDRS_MAGIC, true);
  v.setUint16(HDR_VERSION, 0x020c, true); // 2.12: the ext_* fields we fill exist
  v.setUint32(HDR_INITRD_ADDR_MAX, DEFAULT_INITRD_ADDR_MAX, true);
  v.setUint32(HDR_KERNEL_ALIGNMENT, 0x200000, true);
  v.setUint32(HDR_CMDLINE_SIZE, DEFAULT_CMDLINE_SIZE, true);
  h[HDR_LOADFLAGS] = LOADED_HIGH;
  return h;
}

/**
 * Fill the zero page ("boot_params") at BOOT_PARAMS_ADDR: the setup header copied from the
 * kernel file (bytes 0x1F1 up to 0x202 + the byte at 0x201), then what a boot loader must set
 * (boot.rst, "Details of Header Fields"; zero-page.rst for the offsets outside the header).
 */
export function writeZeroPage(mem: GuestMemory, o: {
  /** The kernel file's first bytes (or a synthesized header); at least headerEnd long. */
  header: Uint8Array;
  headerEnd: number;
  cmdlineAddr: number;
  initrd?: { addr: number; size: number };
  e820: readonly E820Entry[];
  rsdpAddr?: number;
}): number {
  const zp = new Uint8Array(ZERO_PAGE_SIZE);
  const v = new DataView(zp.buffer);
  const end = Math.min(o.headerEnd, o.header.length, ZERO_PAGE_SIZE);
  zp.set(o.header.subarray(ZP_SETUP_HEADER, end), ZP_SETUP_HEADER);
  zp[HDR_TYPE_OF_LOADER] = 0xff; // "undefined" boot loader: no assigned ID (boot.rst, type_of_loader)
  // LOADED_HIGH: the protected-mode code is at or above 1 MiB. CAN_USE_HEAP + heap_end_ptr as a
  // boot loader that loaded the real-mode code at a 64 KiB segment would say (only the setup code
  // uses them; the kernel proper ignores them). KASLR_FLAG is the decompressor's to set.
  zp[HDR_LOADFLAGS] = (zp[HDR_LOADFLAGS] | LOADED_HIGH | CAN_USE_HEAP) & ~KASLR_FLAG;
  v.setUint16(HDR_HEAP_END_PTR, 0xfe00, true);
  // cmd_line_ptr and ramdisk_*: low 32 bits in the header, high 32 bits in the ext_* fields.
  v.setUint32(HDR_CMD_LINE_PTR, o.cmdlineAddr >>> 0, true);
  v.setUint32(ZP_EXT_CMD_LINE_PTR, Math.floor(o.cmdlineAddr / 2 ** 32), true);
  if (o.initrd) {
    v.setUint32(HDR_RAMDISK_IMAGE, o.initrd.addr >>> 0, true);
    v.setUint32(HDR_RAMDISK_SIZE, o.initrd.size >>> 0, true);
    v.setUint32(ZP_EXT_RAMDISK_IMAGE, Math.floor(o.initrd.addr / 2 ** 32), true);
    v.setUint32(ZP_EXT_RAMDISK_SIZE, Math.floor(o.initrd.size / 2 ** 32), true);
  }
  if (o.e820.length > E820_MAX_ZEROPAGE) throw new BootError(`too many memory map entries (${o.e820.length})`);
  zp[ZP_E820_ENTRIES] = o.e820.length;
  writeE820ZeroPage(v, ZP_E820_TABLE, o.e820);
  if (o.rsdpAddr !== undefined) v.setBigUint64(ZP_ACPI_RSDP_ADDR, BigInt(o.rsdpAddr), true);
  v.setBigUint64(HDR_SETUP_DATA, BigInt(writeRngSeed(mem)), true);
  mem.write(BOOT_PARAMS_ADDR, zp);
  return BOOT_PARAMS_ADDR;
}

/**
 * A setup_data entry with 32 bytes from the host's CSPRNG (SETUP_RNG_SEED) at
 * BOOT_SETUP_DATA_ADDR; returns its address. Without it a guest has no entropy it trusts until
 * enough interrupts have been timed: Linux 6.1 then runs every get_random_u32() (one per new
 * slab, per inode...) through a full BLAKE2s extraction of its input pool, ~0.2 s of the Debian
 * kernel's boot under the software CPU. Linux credits the seed when built with
 * RANDOM_TRUST_BOOTLOADER (Debian's kernels are), so its RNG is ready from the start
 * ("random: crng init done" at 0.000000), and it wipes the seed from memory after reading it.
 * QEMU passed the same seed on x86 in 7.1 (7.2 took it out again); EFI boot loaders pass one
 * through the EFI RNG protocol.
 */
export function writeRngSeed(mem: GuestMemory): number {
  const entry = new Uint8Array(SETUP_DATA_HEADER_SIZE + RNG_SEED_BYTES);
  const v = new DataView(entry.buffer);
  v.setBigUint64(0, 0n, true); // next: the list ends here
  v.setUint32(8, SETUP_RNG_SEED, true);
  v.setUint32(12, RNG_SEED_BYTES, true);
  randomFillSync(entry, SETUP_DATA_HEADER_SIZE);
  mem.write(BOOT_SETUP_DATA_ADDR, entry);
  return BOOT_SETUP_DATA_ADDR;
}

/** Fill hvm_start_info (version 1) at PVH_START_INFO_ADDR, with its module list and memory map. */
export function writePvhStartInfo(mem: GuestMemory, o: {
  cmdlineAddr: number;
  initrd?: { addr: number; size: number };
  e820: readonly E820Entry[];
  rsdpAddr?: number;
}): number {
  const maxEntries = Math.floor((PAGE - PVH_MEMMAP_OFFSET) / PVH_MEMMAP_ENTRY_SIZE);
  if (o.e820.length > maxEntries) throw new BootError(`too many memory map entries (${o.e820.length})`);
  const page = new Uint8Array(PAGE);
  const v = new DataView(page.buffer);
  const base = PVH_START_INFO_ADDR;
  v.setUint32(0, XEN_HVM_START_MAGIC, true);
  v.setUint32(4, PVH_START_INFO_VERSION, true);
  v.setUint32(8, 0, true); // flags: no SIF_* apply outside Xen
  if (o.initrd) {
    v.setUint32(12, 1, true); // nr_modules
    v.setBigUint64(16, BigInt(base + PVH_MODLIST_OFFSET), true);
    v.setBigUint64(PVH_MODLIST_OFFSET, BigInt(o.initrd.addr), true);
    v.setBigUint64(PVH_MODLIST_OFFSET + 8, BigInt(o.initrd.size), true);
    // cmdline_paddr and reserved stay 0 (0 = "not present", per the header's note).
  }
  v.setBigUint64(24, BigInt(o.cmdlineAddr), true);
  v.setBigUint64(32, BigInt(o.rsdpAddr ?? 0), true);
  v.setBigUint64(40, BigInt(base + PVH_MEMMAP_OFFSET), true);
  v.setUint32(48, o.e820.length, true);
  o.e820.forEach((e, i) => {
    const at = PVH_MEMMAP_OFFSET + i * PVH_MEMMAP_ENTRY_SIZE;
    v.setBigUint64(at, BigInt(e.addr), true);
    v.setBigUint64(at + 8, BigInt(e.size), true);
    v.setUint32(at + 16, e.type, true); // XEN_HVM_MEMMAP_TYPE_* share the e820 numbering
  });
  mem.write(base, page);
  return base;
}

/** The entry's physical address: e_entry, or, if it is a virtual address of a segment, translated. */
function physicalEntry(elf: ElfImage, path: string): number {
  const loads = elf.segments.filter((s) => s.type === PT_LOAD && s.memsz > 0);
  const e = elf.entry64;
  if (loads.some((s) => e >= BigInt(s.paddr) && e < BigInt(s.paddr + s.memsz))) return Number(e);
  const s = loads.find((seg) => e >= seg.vaddr64 && e < seg.vaddr64 + BigInt(seg.memsz));
  if (s) return s.paddr + Number(e - s.vaddr64);
  throw new BootError(`${path}: the ELF entry point 0x${e.toString(16)} is outside every loadable segment`);
}

interface Loaded {
  entry: number;
  kernelStart: number;
  kernelEnd: number;
  description: string;
}

/** A vmlinux that decompressIntoGuest left in guest RAM: where its image lies, its size, and what to clean up. */
interface InGuestImage { gpa: number; size: number; scratch: GpaRange[] }

function loadVmlinux(
  mem: GuestMemory, elf: ElfImage, mode: LinuxBootMode, what: string, initSize?: number, inGuest?: InGuestImage,
): Loaded {
  let entry: number;
  let description: string;
  if (mode === 'pvh') {
    const e = pvhEntry(elf);
    if (e === undefined) {
      throw new BootError(
        `${what} has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): the kernel was built without CONFIG_PVH; ` +
          'use --boot-mode elf',
      );
    }
    entry = e;
    description = `PVH 32-bit entry at ${hex(entry)}`;
  } else {
    if (elf.class !== 64 || elf.machine !== EM_X86_64) {
      throw new BootError(
        `${what} is a 32-bit ELF; the 64-bit entry needs an x86-64 vmlinux (a multiboot kernel is booted ` +
          'through its multiboot header, a PVH-capable one with --boot-mode pvh)',
      );
    }
    entry = physicalEntry(elf, what);
    description = `64-bit entry at ${hex(entry)} (startup_64)`;
  }
  const extent = elfLoadExtent(elf);
  if (extent.start < BIOS_AREA_END) {
    throw new BootError(`${what} loads at ${hex(extent.start)}, below 1 MiB where tsvm keeps its boot structures`);
  }
  // The decompressor would have reserved init_size from the load address; keep that free too.
  const kernelEnd = Math.max(extent.end, initSize !== undefined ? extent.start + initSize : 0);
  if (inGuest) placeElfSegments(mem, elf, inGuest.gpa, inGuest.scratch, what);
  else loadElfSegments(mem, elf, what);
  if (mem.writableOffset(extent.start, kernelEnd - extent.start) < 0) {
    throw new BootError(
      `${what} needs more memory: it claims ${hex(extent.start)}-${hex(kernelEnd)} (init_size), so the guest needs ` +
        `at least ${Math.ceil(kernelEnd / MiB)} MiB of RAM but has ${Math.floor(mem.ramSize / MiB)} MiB; use --memory`,
    );
  }
  if (mode === 'pvh' && !mem.isRam(entry)) throw new BootError(`${what}: the PVH entry ${hex(entry)} is not in RAM`);
  return { entry, kernelStart: extent.start, kernelEnd, description };
}

function loadBzImage64(mem: GuestMemory, file: Uint8Array, h: SetupHeader, path: string): Loaded {
  if (h.version < 0x020c || !(h.xloadflags & XLF_KERNEL_64)) {
    throw new BootError(
      `${path} has no 64-bit entry point (boot protocol ${protocolString(h.version)}, XLF_KERNEL_64 ` +
        `${h.xloadflags & XLF_KERNEL_64 ? 'set' : 'clear'}); use --boot-mode elf or pvh`,
    );
  }
  if (!(h.loadflags & LOADED_HIGH)) throw new BootError(`${path} is a zImage (loads below 1 MiB); tsvm boots bzImages`);
  const image = file.subarray(h.protectedModeOffset);
  // A relocatable kernel may go at any kernel_alignment-aligned address; pref_address is where it
  // would rather be (boot.rst: relocatable_kernel, pref_address). A fixed one must go there.
  let addr = h.prefAddress ?? DEFAULT_KERNEL_ADDR;
  if (h.relocatable && h.kernelAlignment > 0 && (h.kernelAlignment & (h.kernelAlignment - 1)) === 0) {
    addr = alignUp(addr, h.kernelAlignment);
  }
  const claim = Math.max(image.length, h.initSize ?? 0);
  if (mem.writableOffset(addr, claim) < 0) {
    throw new BootError(
      `${path} needs more memory: it occupies ${hex(addr)}-${hex(addr + claim)} (init_size), so the guest needs ` +
        `at least ${Math.ceil((addr + claim) / MiB)} MiB of RAM but has ${Math.floor(mem.ramSize / MiB)} MiB; use --memory`,
    );
  }
  mem.write(addr, image);
  // Whatever the bzImage does not fill up to init_size is the decompressor's scratch space; zero it
  // so a reboot does not hand the new kernel the old one's leftovers.
  if (claim > image.length) mem.fill(addr + image.length, claim - image.length, 0);
  const entry = addr + 0x200; // boot.rst: "the 64-bit entry point is at the load address + 0x200"
  return {
    entry, kernelStart: addr, kernelEnd: addr + claim,
    description: `64-bit entry at ${hex(entry)}, the kernel decompresses itself`,
  };
}

/**
 * Decompress an LZ4 kernel payload straight into guest RAM, when guest RAM is a WebAssembly memory
 * (the software CPU's), instead of into a buffer of its own that loadElfSegments then copies: on
 * Debian's 53 MB vmlinux that saved a second round of fresh-page faults and the copy (~20 ms of
 * a ~60 ms load). The image goes 2 MiB below pref_address: an x86-64 vmlinux is linked with 2 MiB
 * pages (max-page-size), so its first PT_LOAD segment is at file offset 0x200000 and loads at
 * LOAD_PHYSICAL_ADDR, pref_address (boot.rst); that segment, and those with the same offset to
 * address, are then already in place, and placeElfSegments moves the others. The compressed input
 * goes above both the image and init_size. Undefined when this does not apply or does not
 * decode; the caller then takes the ordinary path, which also names what is wrong with the data.
 */
function decompressIntoGuest(mem: GuestMemory, payload: Uint8Array, h: SetupHeader, what: string): InGuestImage | undefined {
  if (!mem.wasmMemory || payload.length < 8 || detectCompression(payload) !== 'lz4-legacy') return undefined;
  const { compressed: input, size } = splitKernelPayload(payload);
  const pref = h.prefAddress ?? DEFAULT_KERNEL_ADDR;
  const gpa = pref - 2 * MiB;
  const inputGpa = alignUp(Math.max(gpa + size, pref + (h.initSize ?? 0)), PAGE);
  const at = mem.writableOffset(gpa, size);
  const inputAt = mem.writableOffset(inputGpa, input.length);
  if (size === 0 || gpa < BIOS_AREA_END || at < 0 || inputAt < 0) return undefined;
  const target = { memory: mem.wasmMemory, buffer: mem.buffer, dst: mem.base + at, inputAt: mem.base + inputAt };
  const scratch = [{ gpa, len: size }, { gpa: inputGpa, len: input.length }];
  if (decompressLz4LegacyInto(input, size, target, what)) return { gpa, size, scratch };
  for (const r of scratch) mem.fill(r.gpa, r.len, 0); // what a failed decode wrote
  return undefined;
}

/**
 * Load a Linux kernel (bzImage or ELF vmlinux), its command line and initrd into `mem`, and
 * return the state vCPU 0 starts in.
 */
export function loadLinux(mem: GuestMemory, opts: LinuxLoadOptions): LinuxBootPlan {
  const path = opts.kernelPath;
  const file = opts.kernel;
  const mode: LinuxBootMode = opts.mode ?? 'elf';
  let header: SetupHeader | undefined;
  let loaded: Loaded;
  let payloadFormat: CompressionFormat | undefined;
  let decompressMs: number | undefined;
  let kind: string;

  if (isElf(file)) {
    if (mode === 'bzimage-64') {
      throw new BootError(`${path} is an ELF vmlinux, not a bzImage; use --boot-mode elf or pvh`);
    }
    loaded = loadVmlinux(mem, parseElf(file, path), mode, path);
    kind = 'ELF vmlinux';
  } else {
    header = parseSetupHeader(file, path);
    if (mode === 'bzimage-64') {
      loaded = loadBzImage64(mem, file, header, path);
      kind = 'bzImage';
    } else {
      const payload = payloadOf(file, header, path);
      const what = `${path}: kernel payload`;
      const t0 = performance.now();
      const inGuest = decompressIntoGuest(mem, payload, header, what);
      let data: Uint8Array;
      if (inGuest) {
        data = mem.slice(inGuest.gpa, inGuest.size);
        payloadFormat = 'lz4-legacy';
      } else {
        ({ data, format: payloadFormat } = decompressKernelPayload(payload, { what }));
      }
      decompressMs = performance.now() - t0;
      if (!isElf(data)) throw new BootError(`${what} does not decompress to an ELF vmlinux; the bzImage is damaged`);
      loaded = loadVmlinux(mem, parseElf(data, `${path} (decompressed vmlinux)`), mode, path, header.initSize, inGuest);
      kind = `bzImage (${compressionName(payloadFormat)} payload decompressed on the host in ${Math.round(decompressMs)} ms)`;
    }
  }
  // Command line.
  const cmdline = encodeCmdline(opts.cmdline, header?.cmdlineSize ?? DEFAULT_CMDLINE_SIZE, path);
  mem.write(BOOT_CMDLINE_ADDR, cmdline);

  // Memory map and initrd.
  const e820 = buildE820(mem, opts.e820Extra ?? []);
  let initrd: { addr: number; size: number } | undefined;
  if (opts.initrd && opts.initrd.length > 0) {
    const size = opts.initrd.length;
    const addr = placeInitrd({
      size, kernelEnd: loaded.kernelEnd, lowRamEnd: mem.regions[0].size,
      initrdAddrMax: header?.initrdAddrMax || DEFAULT_INITRD_ADDR_MAX,
    });
    mem.write(addr, opts.initrd);
    initrd = { addr, size };
  }

  let cpu: CpuState;
  let bootInfoAddr: number;
  if (mode === 'pvh') {
    bootInfoAddr = writePvhStartInfo(mem, { cmdlineAddr: BOOT_CMDLINE_ADDR, initrd, e820, rsdpAddr: opts.rsdpAddr });
    cpu = protectedModeState(BigInt(loaded.entry));
    const gdt = writeBootGdt(mem, '32');
    cpu.gdt = { base: gdt.gdtBase, limit: gdt.gdtLimit };
    cpu.regs.rbx = BigInt(bootInfoAddr);
  } else {
    const hdrBytes = header ? file : synthesizedHeader();
    const headerEnd = header ? header.headerEnd : hdrBytes.length;
    bootInfoAddr = writeZeroPage(mem, {
      header: hdrBytes, headerEnd, cmdlineAddr: BOOT_CMDLINE_ADDR, initrd, e820, rsdpAddr: opts.rsdpAddr,
    });
    const paging = setupLongModePaging(mem);
    cpu = longModeState(BigInt(loaded.entry), paging.cr3, paging.gdtBase, paging.gdtLimit);
    cpu.regs.rsi = BigInt(bootInfoAddr);
  }
  cpu.regs.rsp = BigInt(BOOT_STACK_TOP);

  const version = header?.kernelVersion ? `Linux ${header.kernelVersion.split(' ')[0]}` : 'Linux';
  const initrdText = initrd ? `, initrd ${Math.ceil(initrd.size / 1024)} KiB at ${hex(initrd.addr)}` : '';
  return {
    cpu,
    summary: `${version} ${kind}, ${loaded.description}${initrdText}`,
    layout: {
      mode, entry: loaded.entry, kernelStart: loaded.kernelStart, kernelEnd: loaded.kernelEnd,
      cmdlineAddr: BOOT_CMDLINE_ADDR, initrdAddr: initrd?.addr, initrdSize: initrd?.size,
      bootInfoAddr, e820, payloadFormat, decompressMs,
    },
  };
}
