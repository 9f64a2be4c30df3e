// Differentiated System Description Table (ACPI 6.4 §5.2.11.1): the header followed by an AML
// definition block, here encoded by hand (aml.ts). What it declares, as ASL:
//
//   DefinitionBlock ("", "DSDT", 2, "TSVM  ", "TSVMPC  ", 1) {
//     Scope (\_SB) {
//       Device (COM1) {
//         Name (_HID, EisaId ("PNP0501"))      // 16550A-compatible serial port
//         Name (_UID, 1)
//         Name (_CRS, ResourceTemplate () {
//           IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08)
//           IRQNoFlags () {4}
//         })
//       }
//     }
//     Name (\_S5, Package (4) { 5, 5, 0, 0 })  // SLP_TYPa, SLP_TYPb, reserved, reserved
//     ...extra AML blobs from the caller (PCI host bridge etc. later)
//   }
//
// \_S5 (§7.4.2 "\_Sx (System States)"): the package's first two integers are the values OSPM
// writes into the SLP_TYPx field (bits 12:10) of PM1a_CNT and PM1b_CNT together with SLP_EN
// (bit 13) to enter S5 (§4.8, PM1 Control register). Linux's poweroff does exactly that once it
// has evaluated \_S5, so our PM device powers off on SLP_TYP = ACPI_S5_SLP_TYP with SLP_EN.
import { ACPI_S5_SLP_TYP, COM1_IRQ, COM1_PORT } from '../../vmm/platform-layout.js';
import {
  type Aml, concat, device, eisaId, integer, irqNoFlags, ioPort, name, pkg, resourceTemplate, scope,
} from './aml.js';
import { ACPI_HEADER_SIZE, finishTable, newTable } from './table.js';

/** Revision 2: integers in this definition block are 64 bits (§5.2.11.1, DSDT "Revision"). */
export const DSDT_REVISION = 2;

/** Name(\_S5, Package(){SLP_TYP, SLP_TYP, 0, 0}). PM1b does not exist; its value is unused. */
export function s5Object(slpTyp = ACPI_S5_SLP_TYP): Aml {
  return name('\\_S5_', pkg([integer(slpTyp), integer(slpTyp), integer(0), integer(0)]));
}

/** A PNP0501 (16550A) serial port device with its fixed I/O range and ISA IRQ. */
export function serialPortDevice(devName: string, uid: number, port: number, irq: number): Aml {
  return device(devName, [
    name('_HID', eisaId('PNP0501')),
    name('_UID', integer(uid)),
    // The 16550 decodes 8 consecutive ports; a fixed base (min = max), so alignment is nominal.
    name('_CRS', resourceTemplate([ioPort(port, port, 0x01, 8), irqNoFlags([irq])])),
  ]);
}

/** The AML body of our DSDT (no header). `extraAml` terms are appended at the root scope. */
export function dsdtAml(extraAml: readonly Aml[] = []): Uint8Array {
  return concat([
    scope('\\_SB_', [serialPortDevice('COM1', 1, COM1_PORT, COM1_IRQ)]),
    s5Object(),
    ...extraAml,
  ]);
}

export function buildDsdt(extraAml: readonly Aml[] = []): Uint8Array {
  const body = dsdtAml(extraAml);
  const { bytes } = newTable('DSDT', ACPI_HEADER_SIZE + body.length, DSDT_REVISION);
  bytes.set(body, ACPI_HEADER_SIZE);
  return finishTable(bytes);
}
