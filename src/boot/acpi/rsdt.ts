// Root System Description Table (ACPI 6.4 §5.2.7, Table 5.5): like the XSDT with 32-bit
// entries. An ACPI 2.0+ OS uses the XSDT, but readers that only know the RSDP's RsdtAddress
// still exist: kvm-unit-tests' lib/acpi.c walks the RSDT to find the FADT (and through it the
// FACS for the s3 test), so we publish both, listing the same tables.
import { ACPI_HEADER_SIZE, finishTable, newTable } from './table.js';

export const RSDT_REVISION = 1; // Table 5.5: "Revision: 1"

export function buildRsdt(tableAddrs: readonly number[]): Uint8Array {
  const { bytes, view } = newTable('RSDT', ACPI_HEADER_SIZE + 4 * tableAddrs.length, RSDT_REVISION);
  tableAddrs.forEach((a, i) => {
    if (a > 0xffffffff) throw new RangeError('RSDT entries must be below 4 GiB');
    view.setUint32(ACPI_HEADER_SIZE + 4 * i, a, true);
  });
  return finishTable(bytes);
}
