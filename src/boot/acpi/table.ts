// Pieces every ACPI table shares: the 36-byte system description header, the checksum rule and
// the Generic Address Structure. All multi-byte fields in ACPI tables are little-endian
// (ACPI 6.4 §5.2 "ACPI System Description Tables").

/** OEMID (6 bytes) written in every header we build; the FADT's must match the XSDT's, so one value everywhere. */
export const ACPI_OEM_ID = 'TSVM  ';
/** OEM Table ID (8 bytes): the spec asks that the FADT's match the RSDT/XSDT's; we use one for all. */
export const ACPI_OEM_TABLE_ID = 'TSVMPC  ';
export const ACPI_OEM_REVISION = 1;
/** Creator ID / revision: for definition blocks this names the AML compiler, here our own encoder. */
export const ACPI_CREATOR_ID = 'TSVM';
export const ACPI_CREATOR_REVISION = 1;

/** Size of the common header (ACPI 6.4 §5.2.6, Table 5.4 "DESCRIPTION_HEADER Fields"). */
export const ACPI_HEADER_SIZE = 36;
/** Offset of the checksum byte in the common header (Table 5.4). */
export const ACPI_CHECKSUM_OFFSET = 9;

/** Write an ASCII string into `buf` at `off`, exactly `len` bytes (space padded), for signatures and IDs. */
export function putAscii(buf: Uint8Array, off: number, s: string, len: number, pad = 0x20): void {
  if (s.length > len) throw new RangeError(`ACPI identifier "${s}" is longer than ${len} bytes`);
  for (let i = 0; i < len; i++) {
    const c = i < s.length ? s.charCodeAt(i) : pad;
    if (c > 0x7e) throw new RangeError(`ACPI identifier "${s}" is not ASCII`);
    buf[off + i] = c;
  }
}

export function getAscii(buf: Uint8Array, off: number, len: number): string {
  return String.fromCharCode(...buf.subarray(off, off + len));
}

/** Byte sum mod 256 of `buf` (a valid table or RSDP part sums to 0). */
export function byteSum(buf: Uint8Array, start = 0, end = buf.length): number {
  let s = 0;
  for (let i = start; i < end; i++) s = (s + buf[i]) & 0xff;
  return s;
}

/** Set the byte at `at` so that bytes [start, end) sum to zero mod 256. */
export function fixChecksum(buf: Uint8Array, at: number, start = 0, end = buf.length): void {
  buf[at] = 0;
  buf[at] = (0x100 - byteSum(buf, start, end)) & 0xff;
}

/**
 * A zeroed table of `length` bytes with its header filled in (Table 5.4): Signature, Length,
 * Revision, OEMID, OEM Table ID, OEM Revision, Creator ID, Creator Revision. The checksum is
 * left for `finishTable`, after the body is written.
 */
export function newTable(signature: string, length: number, revision: number): { bytes: Uint8Array; view: DataView } {
  if (length < ACPI_HEADER_SIZE) throw new RangeError(`ACPI table ${signature} shorter than its header`);
  const bytes = new Uint8Array(length);
  const view = new DataView(bytes.buffer);
  putAscii(bytes, 0, signature, 4);
  view.setUint32(4, length, true);
  bytes[8] = revision;
  putAscii(bytes, 10, ACPI_OEM_ID, 6);
  putAscii(bytes, 16, ACPI_OEM_TABLE_ID, 8);
  view.setUint32(24, ACPI_OEM_REVISION, true);
  putAscii(bytes, 28, ACPI_CREATOR_ID, 4);
  view.setUint32(32, ACPI_CREATOR_REVISION, true);
  return { bytes, view };
}

/** Set the header checksum so the entire table sums to zero (Table 5.4, "Checksum"). */
export function finishTable(bytes: Uint8Array): Uint8Array {
  fixChecksum(bytes, ACPI_CHECKSUM_OFFSET);
  return bytes;
}

// Generic Address Structure (ACPI 6.4 §5.2.3.2, Table 5.1): 12 bytes.
/** Address Space ID values (Table 5.1). */
export const GAS_SYSTEM_MEMORY = 0;
export const GAS_SYSTEM_IO = 1;
/** Access Size values (Table 5.1): 0 undefined (legacy), 1 byte, 2 word, 3 dword, 4 qword. */
export const GAS_ACCESS_UNDEFINED = 0;
export const GAS_ACCESS_BYTE = 1;
export const GAS_ACCESS_WORD = 2;
export const GAS_ACCESS_DWORD = 3;
export const GAS_SIZE = 12;

export interface GenericAddress {
  spaceId: number;
  bitWidth: number;
  bitOffset: number;
  accessSize: number;
  address: number;
}

export function writeGas(view: DataView, off: number, g: GenericAddress): void {
  view.setUint8(off, g.spaceId);
  view.setUint8(off + 1, g.bitWidth);
  view.setUint8(off + 2, g.bitOffset);
  view.setUint8(off + 3, g.accessSize);
  view.setBigUint64(off + 4, BigInt(g.address), true);
}

/** An I/O port register block of `bytes` bytes accessed `accessSize` at a time. */
export function ioGas(port: number, bytes: number, accessSize: number): GenericAddress {
  return { spaceId: GAS_SYSTEM_IO, bitWidth: bytes * 8, bitOffset: 0, accessSize, address: port };
}
