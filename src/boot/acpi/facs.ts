// Firmware ACPI Control Structure (ACPI 6.4 §5.2.10, Table 5.14). It is optional only when the
// FADT sets HW_REDUCED_ACPI; ours does not (we have PM1 fixed hardware), so Linux's ACPICA and
// kvm-unit-tests' s3 test (which writes the firmware waking vector through FADT.FIRMWARE_CTRL)
// expect one. It has no checksum, must be 64-byte aligned and must not sit in memory the e820
// map calls usable RAM (§5.2.10): the builder places it in the reserved BIOS area.

export const FACS_SIZE = 64; // Length: "64 bytes or larger"
export const FACS_ALIGN = 64;
/** Version: 2 for this layout (Table 5.14). */
export const FACS_VERSION = 2;

export function buildFacs(): Uint8Array {
  const b = new Uint8Array(FACS_SIZE);
  const v = new DataView(b.buffer);
  b.set([0x46, 0x41, 0x43, 0x53], 0); // Signature "FACS", offset 0
  v.setUint32(4, FACS_SIZE, true); // Length, offset 4
  // Hardware Signature (8), Firmware Waking Vector (12), Global Lock (16), Flags (20: no S4BIOS,
  // no 64-bit wake), X_Firmware_Waking_Vector (24) all start as zero.
  b[32] = FACS_VERSION; // Version, offset 32
  // OSPM Flags (36) and the reserved tail are zero.
  return b;
}
