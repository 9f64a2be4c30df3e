// Where a device's interrupt line goes under the software CPU (and KVM's split irqchip): the
// IrqSink that devices are given, fanning each GSI out to the 8259 pair and the I/O APIC, as
// the PIIX/ICH wire them.
//
// GSI numbering is the ACPI one (devices/irq.ts). Our MADT has an interrupt source override
// ISA IRQ 0 -> GSI 2 (ACPI 6.4 5.2.12.5), so:
// - GSI 2 is the PIT: PIC IRQ 0 and I/O APIC pin 2 (QEMU wires it the same way). GSI 0 names
//   the same line (ISA IRQ 0 by its ISA number), for devices that think in ISA terms.
// - PIC IRQ 2 is the cascade from the slave; nothing outside drives it.
// - GSI 1, 3-15: PIC IRQ n and I/O APIC pin n (identity, no override).
// - GSI 16-23: I/O APIC only (PCI interrupts).
// - I/O APIC pin 0 is where the chipset connects the 8259's INTR (for "virtual wire" through
//   the I/O APIC, MP spec 3.6.2.2); platform.ts wires it.
// Each line has one driver: the last setIrq() wins (no wired-OR of shared lines; a shared
// level line such as the SCI or PCI INTx needs its devices to combine their levels first).
// Edge or level behaviour is each controller's business (ELCR, redirection entry trigger mode).

import type { IrqSink } from '../irq.js';
import type { IoApic } from './ioapic.js';
import type { PicPair } from './pic8259.js';
import { IOAPIC_PINS } from './ioapic.js';

export const ISA_IRQS = 16;

/** The ISA IRQ (PIC input) a GSI reaches, or -1 for none. */
export function picIrqForGsi(gsi: number): number {
  if (gsi === 0 || gsi === 2) return 0;
  if (gsi > 0 && gsi < ISA_IRQS) return gsi;
  return -1;
}

/** The I/O APIC pin a GSI reaches (our I/O APIC has GSI base 0), or -1 for none. */
export function ioapicPinForGsi(gsi: number): number {
  if (gsi === 0) return 2;
  if (gsi > 0 && gsi < IOAPIC_PINS) return gsi;
  return -1;
}

export class InterruptRouter implements IrqSink {
  private readonly levels = new Uint8Array(IOAPIC_PINS);

  constructor(private readonly pic: PicPair | undefined, private readonly ioapic: IoApic | undefined) {}

  setIrq(gsi: number, level: boolean): void {
    if (!Number.isInteger(gsi) || gsi < 0 || gsi >= IOAPIC_PINS) return;
    const irq = picIrqForGsi(gsi);
    const pin = ioapicPinForGsi(gsi);
    this.levels[gsi] = level ? 1 : 0;
    if (irq >= 0) this.pic?.setIrq(irq, level);
    if (pin >= 0) this.ioapic?.setIrq(pin, level);
  }

  /** The last level driven on a GSI. */
  level(gsi: number): boolean {
    return this.levels[gsi] === 1;
  }
}
