// How a device raises an interrupt without knowing who delivers it. Under KVM with the in-kernel
// irqchip the line goes to KVM_IRQ_LINE; under the software CPU it goes to the PIC/IOAPIC models.
// GSI numbering follows the ACPI/IOAPIC convention: 0-15 are the ISA IRQs (with the MADT's
// interrupt source overrides, e.g. ISA IRQ 0 -> GSI 2), 16-23 the remaining IOAPIC pins.

export interface IrqSink {
  /** Drive the level of global system interrupt `gsi`. Edge-triggered ISA devices pulse 1 then 0. */
  setIrq(gsi: number, level: boolean): void;
}

/** One interrupt line of one device, bound to a sink and a GSI. */
export class IrqLine {
  constructor(private readonly sink: IrqSink, readonly gsi: number) {}
  set(level: boolean): void { this.sink.setIrq(this.gsi, level); }
  raise(): void { this.set(true); }
  lower(): void { this.set(false); }
  /** An edge: what ISA devices like the UART produce on an edge-triggered pin. */
  pulse(): void { this.set(true); this.set(false); }
}

/** A sink that drops everything; for device unit tests and for accelerators without an irqchip yet. */
export class NullIrqSink implements IrqSink {
  readonly log: { gsi: number; level: boolean }[] = [];
  setIrq(gsi: number, level: boolean): void { this.log.push({ gsi, level }); }
}
