// Where the PCI host bridge puts things, in one place: the ACPI tables (MCFG, DSDT _CRS and _PRT)
// and the device models must agree. All of it lies in the 32-bit MMIO hole that starts at
// MMIO_HOLE_START (3 GiB, memory/guest-memory.ts) and below the IOAPIC (0xFEC00000).
//
//   0xC0000000-0xDFFFFFFF  PCI memory window: BARs (32-bit and 64-bit BARs alike) are placed here
//   0xE0000000-0xE00FFFFF  ECAM (PCI Express memory-mapped configuration) for bus 0: 32 devices
//                          x 8 functions x 4 KiB (PCI Firmware Specification 3.2, §4.1.2 MCFG)
//   0xFEC00000...          IOAPIC, LAPIC, firmware (platform-layout.ts)
//
// I/O ports: 0xCF8-0xCFF configuration mechanism #1 (PCI 3.0 §3.2.2.3.2), the window
// 0x1000-0xFFFF (minus 0xCF8-0xCFF) is given to the PCI bus in _CRS, I/O BARs go to 0xC000-0xFFFF.
import { MMIO_HOLE_START } from '../../memory/guest-memory.js';

export const PCI_MMIO_WINDOW_BASE = MMIO_HOLE_START; // 0xC0000000
export const PCI_MMIO_WINDOW_SIZE = 0x20000000; // 512 MiB
export const PCI_ECAM_BASE = 0xe0000000;
/** Buses covered by the ECAM window: bus 0 only, 1 MiB. */
export const PCI_ECAM_BUSES = 1;
export const PCI_ECAM_SIZE = PCI_ECAM_BUSES << 20;

export const PCI_CONFIG_ADDRESS_PORT = 0xcf8;
export const PCI_CONFIG_DATA_PORT = 0xcfc;
/** I/O BARs are allocated here (the upper quarter of the port space, as PC firmware does). */
export const PCI_IO_WINDOW_BASE = 0xc000;
export const PCI_IO_WINDOW_SIZE = 0x4000;

/**
 * INTx routing: the PCI interrupt pins go to IOAPIC inputs 16-23 (GSIs above the ISA range), the
 * pin of slot S, pin P (0 = INTA# .. 3 = INTD#) to GSI 16 + ((S + P) mod 8). That is the
 * conventional rotation ("swizzle") so that the INTA# of neighbouring slots land on different
 * lines (PCI-to-PCI Bridge Architecture 1.2, §9.1). The DSDT's _PRT says the same to the guest.
 */
export const PCI_INTX_GSI_BASE = 16;
export const PCI_INTX_GSI_COUNT = 8;

export function intxGsi(slot: number, pin: number): number {
  return PCI_INTX_GSI_BASE + ((slot + pin) % PCI_INTX_GSI_COUNT);
}

/**
 * Host bridge identity (00:00.0): Intel 82G33/P35 "MCH" DRAM controller, vendor 0x8086, device
 * 0x29C0, class 06 00 00 (host bridge). Chosen because it is what QEMU's q35 machine presents
 * with an MCFG-described ECAM, so Linux and Windows know it and have no quirks that poke
 * chipset registers for it (Linux's MMCONFIG chipset probes match E7520/945/...; not this one).
 */
export const HOST_BRIDGE_VENDOR_ID = 0x8086;
export const HOST_BRIDGE_DEVICE_ID = 0x29c0;
export const HOST_BRIDGE_CLASS = 0x060000;

/** Slots on bus 0 (device numbers 0-31; 0 is the host bridge). */
export const PCI_SLOTS = 32;
