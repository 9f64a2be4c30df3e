// SMBIOS tables (DMTF DSP0134, version 3.x), which a PC's firmware leaves for the OS: who made the
// machine, its BIOS, its chassis. Linux reads them at boot ("DMI: tsvm ..." in dmesg) and shows
// them in /sys/class/dmi/id/ (systemd, dmidecode and cloud-init read them there); QEMU's SeaBIOS
// provides them too. Without them Linux also scans all of 0xF0000-0xFFFFF twice, 16 bytes at a
// time, looking for an entry point (dmi_scan_machine), before it says "DMI not present".
//
// Layout: the 64-bit entry point ("_SM3_", DSP0134 5.2.2) at the start of that area, where the
// scan looks first, and the structure table right after it: BIOS Information (type 0), System
// Information (type 1), System Enclosure (type 3), End-of-Table (type 127).

import { createHash } from 'node:crypto';
import { SMBIOS_START } from '../vmm/platform-layout.js';
import { fixChecksum } from './acpi/table.js';
/** Size of the 64-bit entry point structure (DSP0134 5.2.2, "Entry Point Length"). */
const ENTRY_POINT_LENGTH = 0x18;

export interface SmbiosOptions {
  /** The VM's name: the system's serial number and the seed of its UUID (stable for a name). */
  name: string;
  /** tsvm's version, as the BIOS version. */
  version: string;
}

/** One structure: the formatted area (header included) and its strings (numbered from 1). */
function structure(type: number, handle: number, formatted: number[], strings: string[]): number[] {
  const length = 4 + formatted.length;
  const out = [type, length, handle & 0xff, handle >> 8, ...formatted];
  // the string set: each string NUL-terminated, the set ended by one more NUL (two NULs when empty)
  if (strings.length === 0) return [...out, 0, 0];
  for (const s of strings) out.push(...Buffer.from(s, 'latin1'), 0);
  out.push(0);
  return out;
}

const u16 = (v: number): number[] => [v & 0xff, (v >> 8) & 0xff];

/** A version-5-style UUID from the VM's name, in SMBIOS byte order (DSP0134 7.2.1: the first three fields little-endian). */
function uuidFor(name: string): number[] {
  const h = createHash('sha1').update(`tsvm:${name}`).digest();
  const b = [...h.subarray(0, 16)];
  b[6] = (b[6]! & 0x0f) | 0x50; // version 5
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const le = (i: number, n: number) => b.slice(i, i + n).reverse();
  return [...le(0, 4), ...le(4, 2), ...le(6, 2), ...b.slice(8)];
}

/** The structure table (types 0, 1, 3, 127). */
export function smbiosStructures(o: SmbiosOptions): Uint8Array {
  const bios = structure(0, 0, [
    1, // vendor: string 1
    2, // BIOS version: string 2
    ...u16(0xe800), // starting address segment (the BIOS area a legacy BIOS would occupy)
    3, // release date: string 3
    0, // ROM size: 64 KiB * (n + 1)
    // characteristics (7.1.1): bit 3 "not supported" (no legacy BIOS services are offered)
    0x08, 0, 0, 0, 0, 0, 0, 0,
    0, // extension byte 1
    0x10, // extension byte 2: bit 4, the firmware is a virtual machine
    0, 0, // system BIOS major.minor release (unknown)
    0xff, 0xff, // embedded controller firmware release: none
  ], ['tsvm', o.version, '01/01/2026']);
  const system = structure(1, 1, [
    1, // manufacturer
    2, // product name
    3, // version
    4, // serial number
    ...uuidFor(o.name),
    6, // wake-up type: power switch
    0, // SKU: none
    5, // family
  ], ['tsvm', 'Virtual Machine', o.version, o.name, 'tsvm']);
  const chassis = structure(3, 2, [
    1, // manufacturer
    0x01, // type: other
    0, // version: none
    0, // serial: none
    0, // asset tag: none
    0x03, 0x03, 0x03, // boot-up, power supply and thermal state: safe
    0x02, // security status: unknown
    0, 0, 0, 0, // OEM-defined
    0, // height: unspecified
    0, // power cords: unspecified
    0, 0, // no contained elements (count, record length)
  ], ['tsvm']);
  const end = structure(127, 3, [], []);
  return Uint8Array.from([...bios, ...system, ...chassis, ...end]);
}

/** The 64-bit entry point (DSP0134 5.2.2) for a structure table of `length` bytes at `tableAddr`. */
export function smbiosEntryPoint(tableAddr: number, length: number): Uint8Array {
  const e = new Uint8Array(ENTRY_POINT_LENGTH);
  const v = new DataView(e.buffer);
  e.set(Buffer.from('_SM3_', 'latin1'), 0);
  e[6] = ENTRY_POINT_LENGTH;
  e[7] = 3; // SMBIOS 3.0.0
  e[8] = 0;
  e[9] = 0;
  e[0x0a] = 1; // entry point revision: 3.0
  v.setUint32(0x0c, length, true); // structure table maximum size
  v.setBigUint64(0x10, BigInt(tableAddr), true);
  fixChecksum(e, 5); // the entry point's bytes sum to zero (5.2.2 "Entry Point Structure Checksum")
  return e;
}

/** Both, placed at SMBIOS_START: the entry point, then (16-byte aligned) the structure table. */
export function buildSmbios(o: SmbiosOptions): { addr: number; bytes: Uint8Array } {
  const table = smbiosStructures(o);
  const tableAddr = SMBIOS_START + 0x20;
  const bytes = new Uint8Array(0x20 + table.length);
  bytes.set(smbiosEntryPoint(tableAddr, table.length), 0);
  bytes.set(table, 0x20);
  return { addr: SMBIOS_START, bytes };
}
