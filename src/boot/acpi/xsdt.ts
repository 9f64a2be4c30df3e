// Extended System Description Table (ACPI 6.4 §5.2.8, Table 5.6): the header followed by
// 64-bit physical addresses of the other description tables (not the DSDT or FACS, which the
// FADT points to).
import { ACPI_HEADER_SIZE, finishTable, newTable } from './table.js';

export const XSDT_REVISION = 1; // Table 5.6: "Revision: 1"

export function buildXsdt(tableAddrs: readonly number[]): Uint8Array {
  const { bytes, view } = newTable('XSDT', ACPI_HEADER_SIZE + 8 * tableAddrs.length, XSDT_REVISION);
  tableAddrs.forEach((a, i) => view.setBigUint64(ACPI_HEADER_SIZE + 8 * i, BigInt(a), true));
  return finishTable(bytes);
}
