// MSI-X (PCI Local Bus Specification 3.0, §6.8.2 "MSI-X Capability and Table Structure").
//
// The capability (ID 0x11, 12 bytes) in config space:
//   +0 capability ID, +1 next pointer
//   +2 Message Control: bits 10:0 table size - 1 (read-only), bit 14 Function Mask, bit 15 MSI-X Enable
//   +4 Table Offset/Table BIR: bits 2:0 the BAR holding the table, bits 31:3 its offset (8-aligned)
//   +8 PBA Offset/PBA BIR: the same for the Pending Bit Array
// The table (in a memory BAR) has one 16-byte entry per vector: Message Address (low dword, the
// two low bits zero), Message Upper Address, Message Data, Vector Control (bit 0 Mask Bit, set
// after reset: §6.8.2.9). The PBA holds one pending bit per vector, read-only (§6.8.2.10).
//
// Delivery: a vector whose Mask Bit or the Function Mask is set does not send its message; it
// sets its pending bit instead, and the message is sent when it becomes unmasked (§6.8.3.4
// "Per-vector Masking and Function Masking"). While MSI-X is enabled the function must not use
// INTx (§6.8.3.3); the device model checks `enabled` to choose.
//
// Sending: when the sink offers routes (MsiSink.openRoute: KVM's GSI routes + irqfds), each
// vector that gets used holds one, kept pointed at the vector's current address/data; the
// message then goes out through it, and through signalMsi when the route cannot take it. The
// route is (re)programmed when the guest unmasks a vector or enables MSI-X, so the table update
// happens while the guest configures the device rather than on an interrupt; a message sent
// after the guest rewrote an unmasked entry reprograms it on the way. Routes are released when
// MSI-X is disabled and at reset. Which accelerator is behind the sink stays unknown here.
import type { MsiRoute, MsiSink } from '../../accel/accelerator.js';
import type { BarHandler, PciDevice } from './pci-device.js';

export const PCI_CAP_ID_MSIX = 0x11;
const MSIX_CAP_LENGTH = 12;
const CTRL_ENABLE = 0x8000;
const CTRL_FUNCTION_MASK = 0x4000;
const ENTRY_SIZE = 16;
const VECTOR_MASKED = 1;
/** Upper limit of the table (Message Control's 11-bit field, §6.8.2.3). */
export const MSIX_MAX_VECTORS = 2048;

export interface MsixLayout {
  vectors: number;
  tableBar: number;
  tableOffset: number;
  pbaBar: number;
  pbaOffset: number;
}

export class MsixCapability {
  readonly capOffset: number;
  readonly vectors: number;
  /** Table entries as dwords: [addrLo, addrHi, data, control] per vector. */
  private readonly table: Uint32Array;
  private readonly pending: Uint8Array;
  /** Per vector: its route; undefined before first use, null when the sink has none to give. */
  private readonly routes: (MsiRoute | null | undefined)[];
  /** Messages sent (for tests and stats). */
  delivered = 0;

  constructor(
    private readonly dev: PciDevice,
    readonly layout: MsixLayout,
    private readonly sink: MsiSink,
  ) {
    const n = layout.vectors;
    if (!Number.isInteger(n) || n < 1 || n > MSIX_MAX_VECTORS) throw new RangeError(`MSI-X table of ${n} vectors`);
    if (layout.tableOffset % 8 !== 0 || layout.pbaOffset % 8 !== 0) throw new RangeError('MSI-X table/PBA offsets must be 8-aligned');
    this.vectors = n;
    this.table = new Uint32Array(n * 4);
    this.pending = new Uint8Array(n);
    this.routes = new Array<MsiRoute | null | undefined>(n);
    this.capOffset = dev.addCapability(PCI_CAP_ID_MSIX, MSIX_CAP_LENGTH, {
      write: () => this.controlChanged(),
    });
    dev.setConfig(this.capOffset + 2, 2, n - 1);
    dev.setConfig(this.capOffset + 4, 4, (layout.tableOffset | layout.tableBar) >>> 0);
    dev.setConfig(this.capOffset + 8, 4, (layout.pbaOffset | layout.pbaBar) >>> 0);
    dev.setWritable(this.capOffset + 2, 2, CTRL_ENABLE | CTRL_FUNCTION_MASK);
    this.reset();
  }

  /** Bytes the table occupies in its BAR. */
  get tableSize(): number { return this.vectors * ENTRY_SIZE; }
  /** Bytes the PBA occupies (whole qwords, §6.8.2.10). */
  get pbaSize(): number { return Math.ceil(this.vectors / 64) * 8; }

  private get control(): number { return this.dev.getConfig(this.capOffset + 2, 2); }
  get enabled(): boolean { return (this.control & CTRL_ENABLE) !== 0; }
  get functionMasked(): boolean { return (this.control & CTRL_FUNCTION_MASK) !== 0; }

  isMasked(vector: number): boolean {
    return this.functionMasked || (this.table[vector * 4 + 3] & VECTOR_MASKED) !== 0;
  }

  isPending(vector: number): boolean {
    return this.pending[vector] !== 0;
  }

  /** Every entry masked and zeroed, nothing pending, MSI-X disabled (reset state, §6.8.2.9). */
  reset(): void {
    this.releaseRoutes();
    this.table.fill(0);
    for (let v = 0; v < this.vectors; v++) this.table[v * 4 + 3] = VECTOR_MASKED;
    this.pending.fill(0);
    this.dev.setConfig(this.capOffset + 2, 2, this.vectors - 1);
  }

  /**
   * Ask for vector `vector`'s message. Returns false when MSI-X is disabled or the vector does not
   * exist (the caller then has no MSI-X path); true when the message was sent or left pending.
   */
  notify(vector: number): boolean {
    if (!this.enabled || !Number.isInteger(vector) || vector < 0 || vector >= this.vectors) return false;
    if (this.isMasked(vector)) {
      this.pending[vector] = 1;
      return true;
    }
    this.send(vector);
    return true;
  }

  private address(vector: number): number {
    const i = vector * 4;
    return ((this.table[i] & 0xfffffffc) >>> 0) + this.table[i + 1] * 2 ** 32;
  }

  private send(vector: number): void {
    const address = this.address(vector);
    const data = this.table[vector * 4 + 2];
    this.delivered++;
    const route = this.route(vector);
    if (route && route.program(address, data) && route.signal()) return;
    this.sink.signalMsi(address, data);
  }

  private route(vector: number): MsiRoute | null {
    let r = this.routes[vector];
    if (r === undefined) r = this.routes[vector] = this.sink.openRoute?.() ?? null;
    return r;
  }

  /** Point an unmasked vector's route at its message now, so that its first interrupt does not pay for it. */
  private prepare(vector: number): void {
    if (!this.enabled || this.isMasked(vector)) return;
    this.route(vector)?.program(this.address(vector), this.table[vector * 4 + 2]);
  }

  private releaseRoutes(): void {
    for (let v = 0; v < this.vectors; v++) {
      this.routes[v]?.release();
      this.routes[v] = undefined;
    }
  }

  /** Send what became unmasked and is pending (§6.8.3.4). */
  private flushPending(): void {
    if (!this.enabled || this.functionMasked) return;
    for (let v = 0; v < this.vectors; v++) {
      if (this.pending[v] && !this.isMasked(v)) {
        this.pending[v] = 0;
        this.send(v);
      }
    }
  }

  private controlChanged(): void {
    if (!this.enabled) {
      this.releaseRoutes();
      return;
    }
    if (!this.functionMasked) for (let v = 0; v < this.vectors; v++) this.prepare(v);
    this.flushPending();
  }

  /** The BAR handler for the table (accesses relative to the table's start). */
  readonly tableHandler: BarHandler = {
    read: (offset, size) => {
      if (offset < 0 || offset + size > this.tableSize) return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
      const dword = this.table[offset >> 2];
      const shift = 8 * (offset & 3);
      if (size === 4 && shift === 0) return dword >>> 0;
      return (dword >>> shift) & ((1 << (8 * size)) - 1);
    },
    write: (offset, size, value) => {
      if (offset < 0 || offset + size > this.tableSize) return;
      if ((offset & 3) + size > 4) return; // straddles dwords: not a valid MSI-X access (§6.8.2), ignored
      const idx = offset >> 2;
      const shift = 8 * (offset & 3);
      const mask = size === 4 ? 0xffffffff : ((1 << (8 * size)) - 1) << shift;
      this.table[idx] = ((this.table[idx] & ~mask) | ((value << shift) & mask)) >>> 0;
      if ((idx & 3) === 3) {
        // Vector Control: only the Mask Bit is defined; the rest is reserved (reads 0).
        this.table[idx] &= VECTOR_MASKED;
        this.prepare(idx >> 2);
        this.flushPending();
      }
    },
  };

  /** The BAR handler for the PBA (read-only; writes are ignored, §6.8.2.10). */
  readonly pbaHandler: BarHandler = {
    read: (offset, size) => {
      let v = 0;
      for (let b = 0; b < size; b++) {
        const byte = offset + b;
        let bits = 0;
        for (let k = 0; k < 8; k++) {
          const vec = byte * 8 + k;
          if (vec < this.vectors && this.pending[vec]) bits |= 1 << k;
        }
        v |= bits << (8 * b);
      }
      return v >>> 0;
    },
    write: () => {},
  };
}
