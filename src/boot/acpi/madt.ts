// Multiple APIC Description Table, signature "APIC" (ACPI 6.4 §5.2.12). Debian's kernels have no
// MP-table parser, so this is how Linux learns the CPUs, the IOAPIC and how ISA IRQs map to GSIs.
import { ACPI_SCI_IRQ, IOAPIC_BASE, LAPIC_BASE, PIT_GSI } from '../../vmm/platform-layout.js';
import { finishTable, newTable } from './table.js';

export const MADT_REVISION = 5; // ACPI 6.3/6.4 MADT revision
/** Local Interrupt Controller Address (offset 36) and Flags (offset 40) follow the header. */
export const MADT_LAPIC_ADDR_OFFSET = 36;
export const MADT_FLAGS_OFFSET = 40;
export const MADT_ENTRIES_OFFSET = 44;
/** Flags bit 0: the system also has dual 8259 PICs, which the OS must mask before using the APICs. */
export const MADT_PCAT_COMPAT = 1;

// Interrupt Controller Structure types and lengths (§5.2.12, "Interrupt Controller Structure Types").
export const MADT_TYPE_LOCAL_APIC = 0; // §5.2.12.2, 8 bytes
export const MADT_TYPE_IOAPIC = 1; // §5.2.12.3, 12 bytes
export const MADT_TYPE_INTERRUPT_OVERRIDE = 2; // §5.2.12.5, 10 bytes
export const MADT_LOCAL_APIC_LEN = 8;
export const MADT_IOAPIC_LEN = 12;
export const MADT_OVERRIDE_LEN = 10;
/** Local APIC Flags bit 0 (§5.2.12.2): the processor is usable. */
export const MADT_LAPIC_ENABLED = 1;

// MPS INTI flags (§5.2.12.5, "MPS INTI Flags"): polarity bits 1:0, trigger mode bits 3:2.
export const MPS_INTI_POLARITY_CONFORMS = 0b00;
export const MPS_INTI_POLARITY_ACTIVE_HIGH = 0b01;
export const MPS_INTI_POLARITY_ACTIVE_LOW = 0b11;
export const MPS_INTI_TRIGGER_CONFORMS = 0b00 << 2;
export const MPS_INTI_TRIGGER_EDGE = 0b01 << 2;
export const MPS_INTI_TRIGGER_LEVEL = 0b11 << 2;

/** The IOAPIC's ID register value after reset; the MADT must name the same ID. */
export const IOAPIC_ID = 0;
/** xAPIC IDs are 8 bits and 0xFF is the broadcast ID, so at most 255 CPUs (IDs 0-254) fit this table. */
export const MADT_MAX_CPUS = 255;

export interface InterruptOverride {
  /** ISA IRQ (bus 0 = ISA). */
  source: number;
  gsi: number;
  flags: number;
}

/**
 * The overrides every tsvm PC announces: the PIT's IRQ 0 arrives on IOAPIC pin 2 (edge, like
 * the ISA default, so "conforms"), and the SCI on IRQ 9 is level-triggered active-high, unlike
 * the ISA default of edge/high (§5.2.12.5 and §5.2.9 "SCI_INT": a sharable, level, active-low
 * interrupt unless an override says otherwise; ours says active-high).
 */
export const DEFAULT_OVERRIDES: readonly InterruptOverride[] = [
  { source: 0, gsi: PIT_GSI, flags: MPS_INTI_POLARITY_CONFORMS | MPS_INTI_TRIGGER_CONFORMS },
  { source: ACPI_SCI_IRQ, gsi: ACPI_SCI_IRQ, flags: MPS_INTI_POLARITY_ACTIVE_HIGH | MPS_INTI_TRIGGER_LEVEL },
];

export function buildMadt(cpus: number, overrides: readonly InterruptOverride[] = DEFAULT_OVERRIDES): Uint8Array {
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MADT_MAX_CPUS) {
    throw new RangeError(`MADT: CPU count ${cpus} is not between 1 and ${MADT_MAX_CPUS}`);
  }
  const length = MADT_ENTRIES_OFFSET + cpus * MADT_LOCAL_APIC_LEN + MADT_IOAPIC_LEN + overrides.length * MADT_OVERRIDE_LEN;
  const { bytes, view } = newTable('APIC', length, MADT_REVISION);
  view.setUint32(MADT_LAPIC_ADDR_OFFSET, LAPIC_BASE, true);
  view.setUint32(MADT_FLAGS_OFFSET, MADT_PCAT_COMPAT, true);
  let off = MADT_ENTRIES_OFFSET;
  // Processor Local APIC (§5.2.12.2): Type, Length, ACPI Processor UID, APIC ID, Flags (4).
  // vCPU i has APIC ID i; the BSP (ID 0) comes first, as §5.2.12.1 asks (boot processor first).
  for (let i = 0; i < cpus; i++) {
    bytes[off] = MADT_TYPE_LOCAL_APIC;
    bytes[off + 1] = MADT_LOCAL_APIC_LEN;
    bytes[off + 2] = i;
    bytes[off + 3] = i;
    view.setUint32(off + 4, MADT_LAPIC_ENABLED, true);
    off += MADT_LOCAL_APIC_LEN;
  }
  // I/O APIC (§5.2.12.3): Type, Length, I/O APIC ID, Reserved, Address (4), GSI Base (4).
  bytes[off] = MADT_TYPE_IOAPIC;
  bytes[off + 1] = MADT_IOAPIC_LEN;
  bytes[off + 2] = IOAPIC_ID;
  view.setUint32(off + 4, IOAPIC_BASE, true);
  view.setUint32(off + 8, 0, true);
  off += MADT_IOAPIC_LEN;
  // Interrupt Source Override (§5.2.12.5): Type, Length, Bus (0 = ISA), Source, GSI (4), Flags (2).
  for (const o of overrides) {
    bytes[off] = MADT_TYPE_INTERRUPT_OVERRIDE;
    bytes[off + 1] = MADT_OVERRIDE_LEN;
    bytes[off + 2] = 0;
    bytes[off + 3] = o.source;
    view.setUint32(off + 4, o.gsi, true);
    view.setUint16(off + 8, o.flags, true);
    off += MADT_OVERRIDE_LEN;
  }
  return finishTable(bytes);
}
