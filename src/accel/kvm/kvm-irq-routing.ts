// The VM's GSI routing table (Linux Documentation/virt/kvm/api.rst, 4.52 KVM_SET_GSI_ROUTING):
// which interrupt controller input, or which MSI message, each GSI number stands for.
//
// KVM_CREATE_IRQCHIP installs a default table (kvm_setup_default_irq_routing in the kernel):
// GSI 0-15 drive both the 8259 pair (master pins 0-7, slave pins 0-7 for GSI 8-15) and I/O APIC
// pin n; GSI 16-23 drive I/O APIC pin n only. KVM_SET_GSI_ROUTING replaces the whole table at
// once, so a VMM that adds MSI routes must restate those defaults in every table it sends, or
// KVM_IRQ_LINE (the UART, the RTC, PCI INTx) and the in-kernel PIT (which raises GSI 0) would
// lose their pins. The defaults are restated exactly, GSI 0 included: our MADT's interrupt source
// override says ISA IRQ 0 is GSI 2, which KVM's default table does not model (its PIT drives
// GSI 0 → I/O APIC pin 0); changing that is a guest-visible decision of its own, not part of
// adding MSI routes, so this table keeps what guests have seen so far.
//
// MSI routes get GSIs from 24 up (above every I/O APIC pin). The table is bounded by what the
// kernel accepts (KVM_CAP_IRQ_ROUTING answers with that count) and by our own limit, because
// each route also costs an eventfd; when full, callers fall back to KVM_SIGNAL_MSI.
//
// struct kvm_irq_routing { u32 nr; u32 flags; struct kvm_irq_routing_entry entries[nr]; }
// struct kvm_irq_routing_entry (48 bytes) { u32 gsi; u32 type; u32 flags; u32 pad; union u (32 bytes) }
//   type 1 (irqchip): u.irqchip { u32 irqchip; u32 pin; }
//   type 2 (msi):     u.msi { u32 address_lo; u32 address_hi; u32 data; u32 pad; }
import * as api from './kvm-api.js';
import * as libc from './libc.js';

export const ROUTING_HEADER_SIZE = 8;
export const ROUTING_ENTRY_SIZE = 48;
/** The first GSI above the I/O APIC's 24 pins: where MSI routes start. */
export const FIRST_MSI_GSI = 24;
/** Our own cap on MSI routes (each holds an eventfd); beyond it vectors use KVM_SIGNAL_MSI. */
export const DEFAULT_MAX_MSI_ROUTES = 256;

export type RoutingEntry =
  | { gsi: number; type: 'irqchip'; chip: number; pin: number }
  | { gsi: number; type: 'msi'; address: number; data: number };

/** KVM's default x86 table, entry for entry (kvm_setup_default_irq_routing). */
export function defaultIrqchipRoutes(): RoutingEntry[] {
  const out: RoutingEntry[] = [];
  for (let gsi = 0; gsi < FIRST_MSI_GSI; gsi++) {
    out.push({ gsi, type: 'irqchip', chip: api.KVM_IRQCHIP_IOAPIC, pin: gsi });
    if (gsi < 16) out.push({ gsi, type: 'irqchip', chip: gsi < 8 ? api.KVM_IRQCHIP_PIC_MASTER : api.KVM_IRQCHIP_PIC_SLAVE, pin: gsi % 8 });
  }
  return out;
}

/**
 * Whether `address` is a message KVM should route: the x86 interrupt address range
 * 0xFEE00000-0xFEEFFFFF with upper address 0 (no x2APIC extended destination; SDM vol. 3A
 * 11.11.1). A guest can program anything into an MSI-X table; other addresses are not routed.
 */
export function isLapicMsiAddress(address: number): boolean {
  return Number.isInteger(address) && address >= 0xfee00000 && address <= 0xfeefffff;
}

/** The struct kvm_irq_routing bytes for `entries`. */
export function encodeRoutingTable(entries: readonly RoutingEntry[]): Uint8Array {
  const b = new Uint8Array(ROUTING_HEADER_SIZE + entries.length * ROUTING_ENTRY_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, entries.length, true);
  entries.forEach((e, i) => {
    const o = ROUTING_HEADER_SIZE + i * ROUTING_ENTRY_SIZE;
    v.setUint32(o, e.gsi, true);
    if (e.type === 'irqchip') {
      v.setUint32(o + 4, api.KVM_IRQ_ROUTING_IRQCHIP, true);
      v.setUint32(o + 16, e.chip, true);
      v.setUint32(o + 20, e.pin, true);
    } else {
      v.setUint32(o + 4, api.KVM_IRQ_ROUTING_MSI, true);
      v.setUint32(o + 16, e.address >>> 0, true);
      v.setUint32(o + 20, Math.floor(e.address / 2 ** 32) >>> 0, true);
      v.setUint32(o + 24, e.data >>> 0, true);
    }
  });
  return b;
}

export class KvmIrqRouting {
  private readonly msi = new Map<number, { address: number; data: number }>();
  private readonly irqchip = defaultIrqchipRoutes();
  /** Tables sent (for tests and the debug log). */
  commits = 0;

  private constructor(
    private readonly vmFd: number,
    /** GSIs FIRST_MSI_GSI .. FIRST_MSI_GSI + maxMsiRoutes - 1 may carry MSI routes. */
    readonly maxMsiRoutes: number,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * Takes over the VM's table (after KVM_CREATE_IRQCHIP) by sending the defaults back.
   * Returns a reason string instead when this KVM has no routing or refuses the table: the VM
   * then keeps KVM's own defaults, and MSIs go through KVM_SIGNAL_MSI.
   */
  static create(systemFd: number, vmFd: number, opts: { maxMsiRoutes?: number; log: (line: string) => void }): KvmIrqRouting | string {
    const kernelMax = libc.ioctlInt(systemFd, api.KVM_CHECK_EXTENSION, api.KVM_CAP_IRQ_ROUTING);
    if (kernelMax <= 0) return 'KVM_CAP_IRQ_ROUTING is absent';
    const irqchipEntries = defaultIrqchipRoutes().length;
    // The kernel bounds both the number of entries and the GSI numbers by the same count.
    const room = Math.min(kernelMax - irqchipEntries, kernelMax - FIRST_MSI_GSI);
    const max = Math.max(0, Math.min(room, opts.maxMsiRoutes ?? DEFAULT_MAX_MSI_ROUTES));
    const r = new KvmIrqRouting(vmFd, max, opts.log);
    const err = r.commit();
    return err === undefined ? r : `KVM_SET_GSI_ROUTING with the default routes failed: ${err}`;
  }

  get msiRoutes(): number { return this.msi.size; }

  /** Every entry, irqchip defaults first, then MSI routes by GSI. */
  entries(): RoutingEntry[] {
    const msi = [...this.msi.entries()].sort((a, b) => a[0] - b[0]);
    return [...this.irqchip, ...msi.map(([gsi, m]): RoutingEntry => ({ gsi, type: 'msi', address: m.address, data: m.data }))];
  }

  /** Sends the whole table; returns the error text, or undefined on success. */
  private commit(): string | undefined {
    if (libc.ioctlPtr(this.vmFd, api.KVM_SET_GSI_ROUTING, encodeRoutingTable(this.entries())) < 0) {
      const e = libc.errno();
      return `${libc.strerror(e)} (errno ${e})`;
    }
    this.commits++;
    return undefined;
  }

  /** A new MSI route; its GSI, or undefined when the table is full or KVM refused it. */
  addMsi(address: number, data: number): number | undefined {
    if (!isLapicMsiAddress(address) || this.msi.size >= this.maxMsiRoutes) return undefined;
    let gsi = FIRST_MSI_GSI;
    while (this.msi.has(gsi)) gsi++;
    this.msi.set(gsi, { address, data });
    const err = this.commit();
    if (err === undefined) return gsi;
    this.msi.delete(gsi);
    this.log(`kvm: KVM_SET_GSI_ROUTING (adding GSI ${gsi}): ${err}`);
    return undefined;
  }

  /** Points an MSI route at a new message. False (and the old message kept) when KVM refused it. */
  setMsi(gsi: number, address: number, data: number): boolean {
    const old = this.msi.get(gsi);
    if (!old || !isLapicMsiAddress(address)) return false;
    if (old.address === address && old.data === data) return true;
    this.msi.set(gsi, { address, data });
    const err = this.commit();
    if (err === undefined) return true;
    this.msi.set(gsi, old);
    this.log(`kvm: KVM_SET_GSI_ROUTING (changing GSI ${gsi}): ${err}`);
    return false;
  }

  removeMsi(gsi: number): void {
    if (!this.msi.delete(gsi)) return;
    const err = this.commit();
    // The stale entry stays in the kernel; harmless, as no irqfd or KVM_IRQ_LINE names that GSI any more.
    if (err !== undefined) this.log(`kvm: KVM_SET_GSI_ROUTING (removing GSI ${gsi}): ${err}`);
  }
}
