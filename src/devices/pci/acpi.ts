// How the guest learns about the PCI host bridge through ACPI:
//
// - MCFG (PCI Firmware Specification 3.2, §4.1.2 "MCFG Table Description"): one configuration
//   space base address allocation structure for segment 0, buses 0-0, at PCI_ECAM_BASE.
// - In the DSDT, as ASL:
//
//   Scope (\_SB) {
//     Device (PCI0) {
//       Name (_HID, EisaId ("PNP0A08"))   // PCI Express root bridge (ECAM is PCIe-style)
//       Name (_CID, EisaId ("PNP0A03"))   // compatible: PCI root bridge
//       Name (_UID, 0)  Name (_SEG, 0)  Name (_BBN, 0)  Name (_ADR, 0)
//       Name (_CRS, ResourceTemplate () {
//         WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0, 0, 1)
//         IO (Decode16, 0x0CF8, 0x0CF8, 1, 8)                          // config mechanism #1
//         WordIO (ResourceProducer, ..., 0x0000, 0x0CF7, 0, 0x0CF8)   // ports below it
//         WordIO (ResourceProducer, ..., 0x0D00, 0xFFFF, 0, 0xF300)   // ports above it
//         DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
//                      0, 0xC0000000, 0xDFFFFFFF, 0, 0x20000000)      // the BAR window
//       })
//       Name (_PRT, Package () { Package () { 0xSSSSFFFF, pin, 0, gsi }, ... })
//     }
//     Device (PRES) {                     // motherboard resources: the ECAM window is reserved,
//       Name (_HID, EisaId ("PNP0C02"))   // which Linux checks before it trusts the MCFG
//       Name (_UID, 0x50434945)
//       Name (_CRS, ResourceTemplate () { Memory32Fixed (ReadWrite, 0xE0000000, 0x100000) })
//     }
//   }
//
// _PRT (ACPI 6.4 §6.2.13 "_PRT (PCI Routing Table)"): with Source = 0 the fourth element is the
// global system interrupt the pin is wired to; such interrupts are level-triggered, active-low
// (§6.2.13: "... Global System Interrupt ... assumed to be level-triggered, active-low"). Our
// IrqSink convention is logical: setIrq(gsi, true) means asserted whatever the polarity (KVM's
// in-kernel IOAPIC works that way too).
import {
  type Aml, device, eisaId, integer, ioPort, name, pkg, resourceTemplate, scope,
} from '../../boot/acpi/aml.js';
import { ACPI_HEADER_SIZE, finishTable, newTable } from '../../boot/acpi/table.js';
import {
  PCI_ECAM_BASE, PCI_ECAM_BUSES, PCI_ECAM_SIZE, PCI_MMIO_WINDOW_BASE, PCI_MMIO_WINDOW_SIZE, PCI_SLOTS, intxGsi,
} from './layout.js';

// ---- Large resource descriptors (ACPI 6.4 §6.4.3) ----

/** Address space Resource Type values (§6.4.3.5.1, Table 6.42). */
const RT_MEMORY = 0;
const RT_IO = 1;
const RT_BUS = 2;
/** General flags: bit 3 _MAF (max fixed), bit 2 _MIF (min fixed), bit 1 _DEC (0: positive decode), bit 0 (0: producer). */
const GF_FIXED_PRODUCER = 0x0c;

/** Word Address Space Descriptor (§6.4.3.5.3, tag 0x88, 13 data bytes). */
export function wordAddressSpace(type: number, typeFlags: number, min: number, max: number, translation: number, length: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  b[0] = 0x88;
  v.setUint16(1, 13, true);
  b[3] = type;
  b[4] = GF_FIXED_PRODUCER;
  b[5] = typeFlags;
  v.setUint16(6, 0, true); // _GRA
  v.setUint16(8, min, true);
  v.setUint16(10, max, true);
  v.setUint16(12, translation, true);
  v.setUint16(14, length, true);
  return b;
}

/** DWord Address Space Descriptor (§6.4.3.5.2, tag 0x87, 23 data bytes). */
export function dwordAddressSpace(type: number, typeFlags: number, min: number, max: number, translation: number, length: number): Uint8Array {
  const b = new Uint8Array(26);
  const v = new DataView(b.buffer);
  b[0] = 0x87;
  v.setUint16(1, 23, true);
  b[3] = type;
  b[4] = GF_FIXED_PRODUCER;
  b[5] = typeFlags;
  v.setUint32(6, 0, true); // _GRA
  v.setUint32(10, min >>> 0, true);
  v.setUint32(14, max >>> 0, true);
  v.setUint32(18, translation >>> 0, true);
  v.setUint32(22, length >>> 0, true);
  return b;
}

/** 32-Bit Fixed Memory Range Descriptor (§6.4.3.4, tag 0x86, 9 data bytes); bit 0 of the info byte: read/write. */
export function memory32Fixed(base: number, length: number, writable = true): Uint8Array {
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  b[0] = 0x86;
  v.setUint16(1, 9, true);
  b[3] = writable ? 1 : 0;
  v.setUint32(4, base >>> 0, true);
  v.setUint32(8, length >>> 0, true);
  return b;
}

/** I/O type-specific flag: _RNG = 3, entire range (§6.4.3.5.4, Table 6.47). */
const IO_ENTIRE_RANGE = 0x03;
/** Memory type-specific flags: bit 0 read/write, bits 2:1 _MEM 0 = non-cacheable (Table 6.46). */
const MEM_RW_NONCACHEABLE = 0x01;

export interface PciAcpiOptions {
  /** Slots whose routing to describe; default all 32 (harmless for empty slots). */
  slots?: number[];
}

/** The _PRT package: every pin of every slot to its GSI (layout.ts intxGsi). */
export function pciRoutingTable(slots: readonly number[]): Aml {
  const entries: Aml[] = [];
  for (const s of slots) {
    for (let pin = 0; pin < 4; pin++) {
      // Address: device number in the high word, 0xFFFF (any function) in the low word.
      entries.push(pkg([integer(((s << 16) | 0xffff) >>> 0), integer(pin), integer(0), integer(intxGsi(s, pin))]));
    }
  }
  return name('_PRT', pkg(entries));
}

/** The AML for the DSDT (the caller passes it as `extraDsdtAml`). */
export function pciDsdtAml(opts: PciAcpiOptions = {}): Aml {
  const slots = opts.slots ?? Array.from({ length: PCI_SLOTS }, (_, i) => i);
  const crs = resourceTemplate([
    wordAddressSpace(RT_BUS, 0, 0, PCI_ECAM_BUSES - 1, 0, PCI_ECAM_BUSES),
    ioPort(0xcf8, 0xcf8, 0x01, 8),
    wordAddressSpace(RT_IO, IO_ENTIRE_RANGE, 0x0000, 0x0cf7, 0, 0x0cf8),
    wordAddressSpace(RT_IO, IO_ENTIRE_RANGE, 0x0d00, 0xffff, 0, 0xf300),
    dwordAddressSpace(RT_MEMORY, MEM_RW_NONCACHEABLE, PCI_MMIO_WINDOW_BASE, PCI_MMIO_WINDOW_BASE + PCI_MMIO_WINDOW_SIZE - 1, 0, PCI_MMIO_WINDOW_SIZE),
  ]);
  const pci0 = device('PCI0', [
    name('_HID', eisaId('PNP0A08')),
    name('_CID', eisaId('PNP0A03')),
    name('_ADR', integer(0)),
    name('_UID', integer(0)),
    name('_SEG', integer(0)),
    name('_BBN', integer(0)),
    name('_CRS', crs),
    pciRoutingTable(slots),
  ]);
  const pres = device('PRES', [
    name('_HID', eisaId('PNP0C02')),
    name('_UID', integer(0x50434945)),
    name('_CRS', resourceTemplate([memory32Fixed(PCI_ECAM_BASE, PCI_ECAM_SIZE)])),
  ]);
  return scope('\\_SB_', [pci0, pres]);
}

/** MCFG revision 1 (PCI Firmware 3.2, Table 4-2). */
const MCFG_REVISION = 1;

/**
 * The MCFG table (PCI Firmware 3.2 §4.1.2): header, 8 reserved bytes, then one 16-byte
 * allocation structure: base address (u64), PCI segment group (u16), start bus (u8), end bus (u8),
 * 4 reserved bytes. The checksum is left to the ACPI builder (extraTables are re-checksummed).
 */
export function buildMcfg(): Uint8Array {
  const { bytes, view } = newTable('MCFG', ACPI_HEADER_SIZE + 8 + 16, MCFG_REVISION);
  const off = ACPI_HEADER_SIZE + 8;
  view.setBigUint64(off, BigInt(PCI_ECAM_BASE), true);
  view.setUint16(off + 8, 0, true);
  view.setUint8(off + 10, 0);
  view.setUint8(off + 11, PCI_ECAM_BUSES - 1);
  return finishTable(bytes);
}
