// Root System Description Pointer (ACPI 6.4 §5.2.5.3, Table 5.3), revision 2 (ACPI 2.0+):
// the 20-byte ACPI 1.0 part (its own checksum) followed by Length, the 64-bit XSDT address and an
// extended checksum over all 36 bytes. On a legacy-BIOS PC the OS finds it by scanning
// 0xE0000-0xFFFFF on 16-byte boundaries (§5.2.5.1), which is why the builder puts it first there.
import { ACPI_OEM_ID, fixChecksum, putAscii } from './table.js';

export const RSDP_SIGNATURE = 'RSD PTR ';
export const RSDP_SIZE = 36;
/** Bytes covered by the first (ACPI 1.0) checksum (Table 5.3, "Checksum"). */
export const RSDP_V1_SIZE = 20;
/** "Revision: 2 for ACPI 2.0 and later" (Table 5.3). */
export const RSDP_REVISION = 2;

export function buildRsdp(rsdtAddr: number, xsdtAddr: number): Uint8Array {
  const b = new Uint8Array(RSDP_SIZE);
  const v = new DataView(b.buffer);
  putAscii(b, 0, RSDP_SIGNATURE, 8); // Signature, offset 0
  putAscii(b, 9, ACPI_OEM_ID, 6); // OEMID, offset 9
  b[15] = RSDP_REVISION; // Revision, offset 15
  v.setUint32(16, rsdtAddr, true); // RsdtAddress, offset 16 (32-bit, for ACPI 1.0 readers)
  v.setUint32(20, RSDP_SIZE, true); // Length, offset 20
  v.setBigUint64(24, BigInt(xsdtAddr), true); // XsdtAddress, offset 24
  // Checksum (offset 8) covers the first 20 bytes; Extended Checksum (offset 32) the whole table,
  // so it must be computed after the first one is in place. Bytes 33-35 are reserved (zero).
  fixChecksum(b, 8, 0, RSDP_V1_SIZE);
  fixChecksum(b, 32, 0, RSDP_SIZE);
  return b;
}
