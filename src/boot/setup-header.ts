// The bzImage setup header: the fields a boot loader reads and writes, at the offsets of
// Documentation/arch/x86/boot.rst, "The Real-Mode Kernel Header" (the offsets are from the start
// of the file, which is also the start of the zero page's copy of the header).
import { BootError } from './boot-plan.js';

// Offsets (boot.rst, header table).
export const HDR_SETUP_SECTS = 0x1f1;
export const HDR_VID_MODE = 0x1fa;
export const HDR_BOOT_FLAG = 0x1fe;
export const HDR_JUMP = 0x200;
export const HDR_HEADER = 0x202;
export const HDR_VERSION = 0x206;
export const HDR_KERNEL_VERSION = 0x20e;
export const HDR_TYPE_OF_LOADER = 0x210;
export const HDR_LOADFLAGS = 0x211;
export const HDR_CODE32_START = 0x214;
export const HDR_RAMDISK_IMAGE = 0x218;
export const HDR_RAMDISK_SIZE = 0x21c;
export const HDR_HEAP_END_PTR = 0x224;
export const HDR_CMD_LINE_PTR = 0x228;
export const HDR_INITRD_ADDR_MAX = 0x22c;
export const HDR_KERNEL_ALIGNMENT = 0x230;
export const HDR_RELOCATABLE = 0x234;
export const HDR_XLOADFLAGS = 0x236;
export const HDR_CMDLINE_SIZE = 0x238;
export const HDR_PAYLOAD_OFFSET = 0x248;
export const HDR_PAYLOAD_LENGTH = 0x24c;
export const HDR_SETUP_DATA = 0x250;
export const HDR_PREF_ADDRESS = 0x258;
export const HDR_INIT_SIZE = 0x260;

/** 0xAA55 at 0x1FE (boot.rst: boot_flag). */
export const BOOT_FLAG = 0xaa55;
/** "HdrS" read as a little-endian u32 (boot.rst: header). */
export const HDRS_MAGIC = 0x53726448;

// loadflags bits (boot.rst, "loadflags").
export const LOADED_HIGH = 1 << 0;
/** Kernel-internal: the decompressor tells the kernel proper that it randomized the load address. */
export const KASLR_FLAG = 1 << 1;
export const QUIET_FLAG = 1 << 5;
export const KEEP_SEGMENTS = 1 << 6;
export const CAN_USE_HEAP = 1 << 7;

// xloadflags bits (boot.rst, "xloadflags").
/** XLF_KERNEL_64: the kernel has the legacy 64-bit entry point at 0x200. */
export const XLF_KERNEL_64 = 1 << 0;
/** XLF_CAN_BE_LOADED_ABOVE_4G: kernel, boot_params, command line and ramdisk may be above 4 GiB. */
export const XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1;

/** Oldest protocol we accept: 2.06 added cmdline_size (Linux 2.6.22). */
export const MIN_PROTOCOL = 0x0206;

export interface SetupHeader {
  /** Setup sectors (0 in the file means 4). */
  setupSects: number;
  /** Offset in the file of the protected-mode kernel: (setup_sects + 1) * 512. */
  protectedModeOffset: number;
  /** Boot protocol version, e.g. 0x020f for 2.15. */
  version: number;
  loadflags: number;
  /** Highest address the initrd may occupy (inclusive). */
  initrdAddrMax: number;
  kernelAlignment: number;
  relocatable: boolean;
  /** 0 before protocol 2.12. */
  xloadflags: number;
  /** Longest command line, without its terminating NUL. */
  cmdlineSize: number;
  /** Compressed payload, relative to protectedModeOffset (protocol 2.08+). */
  payloadOffset?: number;
  payloadLength?: number;
  /** Preferred load address and the memory the kernel needs from there (protocol 2.10+). */
  prefAddress?: number;
  initSize?: number;
  /** End of the header in the file: 0x202 plus the byte at 0x201 (the jump over it). */
  headerEnd: number;
  /** e.g. "6.1.0-50-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP ..." when present. */
  kernelVersion?: string;
}

/** The protocol version as "2.15". */
export function protocolString(version: number): string {
  return `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
}

/** True when the file has the "HdrS" signature of a Linux boot image. */
export function hasSetupHeader(bytes: Uint8Array): boolean {
  return bytes.length >= HDR_HEADER + 4 &&
    new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(HDR_HEADER, true) === HDRS_MAGIC;
}

/**
 * Parse and validate the setup header of a bzImage.
 * @param path names the file in messages
 */
export function parseSetupHeader(bytes: Uint8Array, path: string): SetupHeader {
  if (!hasSetupHeader(bytes)) {
    throw new BootError(
      `${path} is not a Linux bzImage (no HdrS signature); pass a bzImage, an ELF vmlinux or a multiboot ELF`,
    );
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 0x270) throw new BootError(`${path}: the bzImage is truncated (${bytes.length} bytes)`);
  if (v.getUint16(HDR_BOOT_FLAG, true) !== BOOT_FLAG) {
    throw new BootError(`${path}: the bzImage has no 0xAA55 boot flag at 0x1FE; the file is damaged`);
  }
  const version = v.getUint16(HDR_VERSION, true);
  if (version < MIN_PROTOCOL) {
    throw new BootError(
      `${path} uses Linux boot protocol ${protocolString(version)}; tsvm needs ${protocolString(MIN_PROTOCOL)} ` +
        'or newer (Linux 2.6.22 or later)',
    );
  }
  const rawSects = bytes[HDR_SETUP_SECTS];
  const setupSects = rawSects === 0 ? 4 : rawSects; // boot.rst: "If this field is 0, the real value is 4."
  const protectedModeOffset = (setupSects + 1) * 512;
  if (protectedModeOffset >= bytes.length) {
    throw new BootError(`${path}: the bzImage is truncated (setup_sects says the kernel starts at ${protectedModeOffset})`);
  }
  const h: SetupHeader = {
    setupSects,
    protectedModeOffset,
    version,
    loadflags: bytes[HDR_LOADFLAGS],
    initrdAddrMax: v.getUint32(HDR_INITRD_ADDR_MAX, true),
    kernelAlignment: v.getUint32(HDR_KERNEL_ALIGNMENT, true),
    relocatable: bytes[HDR_RELOCATABLE] !== 0,
    xloadflags: version >= 0x020c ? v.getUint16(HDR_XLOADFLAGS, true) : 0,
    cmdlineSize: v.getUint32(HDR_CMDLINE_SIZE, true),
    headerEnd: Math.min(HDR_HEADER + bytes[HDR_JUMP + 1], 0x1000),
  };
  if (version >= 0x0208) {
    h.payloadOffset = v.getUint32(HDR_PAYLOAD_OFFSET, true);
    h.payloadLength = v.getUint32(HDR_PAYLOAD_LENGTH, true);
  }
  if (version >= 0x020a) {
    const pref = v.getBigUint64(HDR_PREF_ADDRESS, true);
    if (pref <= BigInt(Number.MAX_SAFE_INTEGER)) h.prefAddress = Number(pref);
    h.initSize = v.getUint32(HDR_INIT_SIZE, true);
  }
  // kernel_version: offset of a NUL-terminated string, less 0x200 (boot.rst, "kernel_version").
  const kv = v.getUint16(HDR_KERNEL_VERSION, true);
  if (kv !== 0 && kv + 0x200 < bytes.length) {
    const start = kv + 0x200;
    let end = start;
    while (end < bytes.length && end - start < 256 && bytes[end] >= 0x20 && bytes[end] < 0x7f) end++;
    if (end > start) h.kernelVersion = String.fromCharCode(...bytes.subarray(start, end));
  }
  return h;
}

/** The payload (compressed vmlinux) of a bzImage, checked against the file. */
export function payloadOf(bytes: Uint8Array, h: SetupHeader, path: string): Uint8Array {
  if (h.payloadOffset === undefined || h.payloadLength === undefined) {
    throw new BootError(
      `${path} uses boot protocol ${protocolString(h.version)}, which does not describe its payload ` +
        '(2.08+ does, Linux 2.6.26 and later), so tsvm cannot decompress it on the host',
    );
  }
  const start = h.protectedModeOffset + h.payloadOffset;
  if (h.payloadLength === 0 || start > bytes.length || h.payloadLength > bytes.length - start) {
    throw new BootError(`${path}: the payload (offset 0x${h.payloadOffset.toString(16)}, ${h.payloadLength} bytes) lies outside the file; the bzImage is truncated or damaged`);
  }
  return bytes.subarray(start, start + h.payloadLength);
}
