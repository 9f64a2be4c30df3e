// Virtio over PCI, modern interface only (VIRTIO 1.2 §4.1): a PCI function with vendor 0x1AF4,
// device ID 0x1040 + type, revision 1 (§4.1.2: non-transitional), whose registers live in one
// 64-bit memory BAR described by vendor-specific capabilities (§4.1.4):
//
//   BAR0 offset  what                                   capability
//   0x0000       common configuration (0x40 bytes)      VIRTIO_PCI_CAP_COMMON_CFG  (§4.1.4.3)
//   0x1000       ISR status (1 byte, read clears)       VIRTIO_PCI_CAP_ISR_CFG     (§4.1.4.5)
//   0x2000       device-specific configuration          VIRTIO_PCI_CAP_DEVICE_CFG  (§4.1.4.6)
//   0x3000       notifications, 4 bytes per queue       VIRTIO_PCI_CAP_NOTIFY_CFG  (§4.1.4.4)
//   0x4000       MSI-X table                            MSI-X capability (PCI 3.0 §6.8.2)
//   0x6000       MSI-X PBA
// plus VIRTIO_PCI_CAP_PCI_CFG (§4.1.4.9), a window onto the BAR through config space.
//
// Interrupts: with MSI-X enabled, each queue (and the configuration change) uses the vector the
// driver assigned (§4.1.5.1.2); otherwise INTx#, level-triggered, with the ISR status telling
// why; reading the ISR clears it and deasserts the line (§4.1.4.5).
//
// Hook points for an accelerator fast path (KVM ioeventfd): `notifyAddress(q)` is the
// guest-physical address of queue q's notify register while BAR0 is decoded, `onNotifyMoved`
// fires when that changes, and `kick(q)` does what a guest write there does.
import type { MsiSink } from '../../accel/accelerator.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { MsixCapability } from '../pci/msix.js';
import { PciDevice, type BarHandler } from '../pci/pci-device.js';
import {
  F_RING_EVENT_IDX, F_RING_INDIRECT_DESC, F_VERSION_1, ISR_CONFIG, ISR_QUEUE, STATUS_DEVICE_NEEDS_RESET,
  STATUS_DRIVER_OK, STATUS_FEATURES_OK, VIRTIO_MSI_NO_VECTOR, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_DEVICE_CFG,
  VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_CAP_PCI_CFG, VIRTIO_PCI_DEVICE_ID_BASE,
  VIRTIO_PCI_VENDOR_ID, bit,
} from './constants.js';
import type { VirtioDevice, VirtioDeviceContext } from './device.js';
import { SplitQueue, VirtqueueError } from './queue.js';

export const COMMON_CFG_OFFSET = 0x0000;
export const COMMON_CFG_LENGTH = 0x40;
export const ISR_OFFSET = 0x1000;
export const DEVICE_CFG_OFFSET = 0x2000;
export const NOTIFY_OFFSET = 0x3000;
export const NOTIFY_OFF_MULTIPLIER = 4;
export const MSIX_TABLE_OFFSET = 0x4000;
export const MSIX_PBA_OFFSET = 0x6000;
export const VIRTIO_BAR_SIZE = 0x8000;
export const VIRTIO_BAR = 0;
const PCI_CAP_ID_VNDR = 0x09;

/** Common configuration register offsets (§4.1.4.3, struct virtio_pci_common_cfg). */
export const CC = {
  DEVICE_FEATURE_SELECT: 0x00,
  DEVICE_FEATURE: 0x04,
  DRIVER_FEATURE_SELECT: 0x08,
  DRIVER_FEATURE: 0x0c,
  CONFIG_MSIX_VECTOR: 0x10,
  NUM_QUEUES: 0x12,
  DEVICE_STATUS: 0x14,
  CONFIG_GENERATION: 0x15,
  QUEUE_SELECT: 0x16,
  QUEUE_SIZE: 0x18,
  QUEUE_MSIX_VECTOR: 0x1a,
  QUEUE_ENABLE: 0x1c,
  QUEUE_NOTIFY_OFF: 0x1e,
  QUEUE_DESC_LO: 0x20,
  QUEUE_DESC_HI: 0x24,
  QUEUE_DRIVER_LO: 0x28,
  QUEUE_DRIVER_HI: 0x2c,
  QUEUE_DEVICE_LO: 0x30,
  QUEUE_DEVICE_HI: 0x34,
  QUEUE_NOTIF_CONFIG_DATA: 0x38,
  QUEUE_RESET: 0x3a,
} as const;

/** [offset, size] of each common-config field, for byte-lane merging of odd-sized accesses. */
const COMMON_FIELDS: readonly (readonly [number, number])[] = [
  [0x00, 4], [0x04, 4], [0x08, 4], [0x0c, 4], [0x10, 2], [0x12, 2], [0x14, 1], [0x15, 1], [0x16, 2], [0x18, 2],
  [0x1a, 2], [0x1c, 2], [0x1e, 2], [0x20, 4], [0x24, 4], [0x28, 4], [0x2c, 4], [0x30, 4], [0x34, 4], [0x38, 2], [0x3a, 2],
  [0x3c, 4],
];

const TRANSPORT_FEATURES = bit(F_VERSION_1) | bit(F_RING_INDIRECT_DESC) | bit(F_RING_EVENT_IDX);
const MASK32 = 0xffffffffn;

export interface VirtioPciOptions {
  mem: GuestMemory;
  msi: MsiSink;
  log?: (line: string) => void;
}

export class VirtioPciDevice extends PciDevice {
  readonly queues: SplitQueue[];
  readonly msix: MsixCapability;
  readonly deviceFeatures: bigint;
  private driverFeatures = 0n;
  private deviceFeatureSelect = 0;
  private driverFeatureSelect = 0;
  private status = 0;
  private configGeneration = 0;
  private configVector = VIRTIO_MSI_NO_VECTOR;
  private queueSelect = 0;
  private isr = 0;
  private ctx?: Context;
  private readonly log: (line: string) => void;
  private barBase: number | undefined;
  private pciCfgCap = 0;
  /** Set when BAR0 moves (or stops being decoded): fast paths re-register their notify addresses. */
  onNotifyMoved?: () => void;
  /** Stats for tests and measurements. */
  readonly stats = { notifies: 0, interrupts: 0, intx: 0 };

  constructor(
    readonly device: VirtioDevice,
    private readonly opts: VirtioPciOptions,
  ) {
    super(device.name, {
      vendorId: VIRTIO_PCI_VENDOR_ID,
      deviceId: VIRTIO_PCI_DEVICE_ID_BASE + device.deviceType,
      classCode: device.pciClass,
      revision: 1,
      subsystemVendorId: VIRTIO_PCI_VENDOR_ID,
      subsystemId: 0x1100,
    });
    this.log = opts.log ?? (() => {});
    this.deviceFeatures = device.features | TRANSPORT_FEATURES;
    this.queues = device.queueSizes.map((n, i) => new SplitQueue(opts.mem, i, n));
    if (this.queues.length * NOTIFY_OFF_MULTIPLIER > MSIX_TABLE_OFFSET - NOTIFY_OFFSET) throw new RangeError('too many virtqueues');
    this.setInterruptPin(1); // INTA#
    this.addBar(VIRTIO_BAR, 'mem64', VIRTIO_BAR_SIZE, this.barHandler);
    this.addVirtioCap(VIRTIO_PCI_CAP_COMMON_CFG, COMMON_CFG_OFFSET, COMMON_CFG_LENGTH);
    this.addVirtioCap(VIRTIO_PCI_CAP_NOTIFY_CFG, NOTIFY_OFFSET, this.queues.length * NOTIFY_OFF_MULTIPLIER, NOTIFY_OFF_MULTIPLIER);
    this.addVirtioCap(VIRTIO_PCI_CAP_ISR_CFG, ISR_OFFSET, 1);
    if (device.configSize > 0) this.addVirtioCap(VIRTIO_PCI_CAP_DEVICE_CFG, DEVICE_CFG_OFFSET, device.configSize);
    this.addPciCfgCap();
    const vectors = this.queues.length + 1;
    this.msix = new MsixCapability(this, {
      vectors,
      tableBar: VIRTIO_BAR,
      tableOffset: MSIX_TABLE_OFFSET,
      pbaBar: VIRTIO_BAR,
      pbaOffset: MSIX_PBA_OFFSET,
    }, opts.msi);
  }

  /**
   * struct virtio_pci_cap (§4.1.4): cap_vndr, cap_next, cap_len, cfg_type, bar, id, padding[2],
   * offset (le32), length (le32); the notify capability adds notify_off_multiplier (le32).
   */
  private addVirtioCap(type: number, offset: number, length: number, multiplier?: number): void {
    const len = multiplier === undefined ? 16 : 20;
    const off = this.addCapability(PCI_CAP_ID_VNDR, len);
    this.setConfig(off + 2, 1, len);
    this.setConfig(off + 3, 1, type);
    this.setConfig(off + 4, 1, VIRTIO_BAR);
    this.setConfig(off + 8, 4, offset);
    this.setConfig(off + 12, 4, length);
    if (multiplier !== undefined) this.setConfig(off + 16, 4, multiplier);
  }

  /**
   * VIRTIO_PCI_CAP_PCI_CFG (§4.1.4.9): the driver writes bar, offset and length (1, 2 or 4) in
   * the capability, then reads or writes pci_cfg_data to access that BAR location.
   */
  private addPciCfgCap(): void {
    const off = this.addCapability(PCI_CAP_ID_VNDR, 20, {
      read: (o, size) => (o >= 16 ? this.pciCfgAccess(o - 16, size) : undefined),
      write: (o, size, value) => { if (o >= 16) this.pciCfgAccess(o - 16, size, value); },
    });
    this.pciCfgCap = off;
    this.setConfig(off + 2, 1, 20);
    this.setConfig(off + 3, 1, VIRTIO_PCI_CAP_PCI_CFG);
    this.setWritable(off + 4, 1, 0xff);
    this.setWritable(off + 8, 4, 0xffffffff);
    this.setWritable(off + 12, 4, 0xffffffff);
    this.setWritable(off + 16, 4, 0xffffffff);
  }

  private pciCfgAccess(dataOffset: number, size: number, value?: number): number {
    const c = this.pciCfgCap;
    const barNo = this.getConfig(c + 4, 1);
    const offset = this.getConfig(c + 8, 4);
    const length = this.getConfig(c + 12, 4);
    // §4.1.4.9.2: only 1/2/4-byte accesses aligned to their size, within the BAR, are defined.
    const ok = barNo === VIRTIO_BAR && dataOffset === 0 && (length === 1 || length === 2 || length === 4) &&
      offset % length === 0 && offset + length <= VIRTIO_BAR_SIZE && size >= length;
    if (value === undefined) return ok ? this.barHandler.read(offset, length as 1 | 2 | 4) : 0;
    if (ok) this.barHandler.write(offset, length as 1 | 2 | 4, value & (length === 4 ? 0xffffffff : (1 << (8 * length)) - 1));
    return 0;
  }

  get deviceStatus(): number { return this.status; }
  get negotiatedFeatures(): bigint { return this.driverFeatures; }

  /** Guest-physical address of queue `q`'s notify register while BAR0 is decoded. */
  notifyAddress(q: number): number | undefined {
    if (this.barBase === undefined || q < 0 || q >= this.queues.length) return undefined;
    return this.barBase + NOTIFY_OFFSET + q * NOTIFY_OFF_MULTIPLIER;
  }

  override barMapped(index: number, addr: number | undefined): void {
    if (index !== VIRTIO_BAR) return;
    this.barBase = addr;
    this.onNotifyMoved?.();
  }

  protected override afterConfigWrite(): void {
    // While MSI-X is enabled the function must not use INTx (PCI 3.0 §6.8.3.3).
    if (this.msix.enabled && this.isr !== 0) {
      this.isr = 0;
      this.setIntx(false);
    }
  }

  // ---- BAR0 ----

  private readonly barHandler: BarHandler = {
    read: (offset, size) => {
      try {
        return this.barRead(offset, size);
      } catch (e) {
        this.internalError(e);
        return 0;
      }
    },
    write: (offset, size, value) => {
      try {
        this.barWrite(offset, size, value);
      } catch (e) {
        this.internalError(e);
      }
    },
  };

  private barRead(offset: number, size: 1 | 2 | 4): number {
    if (offset < COMMON_CFG_LENGTH) return this.commonRead(offset, size);
    if (offset >= ISR_OFFSET && offset < ISR_OFFSET + 4) {
      if (offset !== ISR_OFFSET) return 0;
      // Reading the ISR clears it and deasserts INTx (§4.1.4.5.1).
      const v = this.isr;
      this.isr = 0;
      this.setIntx(false);
      return v;
    }
    if (offset >= DEVICE_CFG_OFFSET && offset < DEVICE_CFG_OFFSET + 0x1000) {
      const o = offset - DEVICE_CFG_OFFSET;
      if (o + size > this.device.configSize) return 0;
      return this.device.readConfig(o, size) >>> 0;
    }
    if (offset >= MSIX_TABLE_OFFSET && offset < MSIX_TABLE_OFFSET + this.msix.tableSize) {
      return this.msix.tableHandler.read(offset - MSIX_TABLE_OFFSET, size);
    }
    if (offset >= MSIX_PBA_OFFSET && offset < MSIX_PBA_OFFSET + this.msix.pbaSize) {
      return this.msix.pbaHandler.read(offset - MSIX_PBA_OFFSET, size);
    }
    return 0;
  }

  private barWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset < COMMON_CFG_LENGTH) return this.commonWrite(offset, size, value);
    if (offset >= NOTIFY_OFFSET && offset < NOTIFY_OFFSET + this.queues.length * NOTIFY_OFF_MULTIPLIER) {
      this.kick(Math.floor((offset - NOTIFY_OFFSET) / NOTIFY_OFF_MULTIPLIER));
      return;
    }
    if (offset >= DEVICE_CFG_OFFSET && offset < DEVICE_CFG_OFFSET + 0x1000) {
      const o = offset - DEVICE_CFG_OFFSET;
      if (o + size <= this.device.configSize) this.device.writeConfig(o, size, value);
      return;
    }
    if (offset >= MSIX_TABLE_OFFSET && offset < MSIX_TABLE_OFFSET + this.msix.tableSize) {
      this.msix.tableHandler.write(offset - MSIX_TABLE_OFFSET, size, value);
    }
    // ISR, PBA and the gaps are read-only: writes are dropped.
  }

  // ---- common configuration ----

  private get selectedQueue(): SplitQueue | undefined {
    return this.queues[this.queueSelect];
  }

  private commonField(off: number): number {
    const q = this.selectedQueue;
    switch (off) {
      case CC.DEVICE_FEATURE_SELECT: return this.deviceFeatureSelect;
      case CC.DEVICE_FEATURE:
        return this.deviceFeatureSelect < 2 ? Number((this.deviceFeatures >> BigInt(32 * this.deviceFeatureSelect)) & MASK32) : 0;
      case CC.DRIVER_FEATURE_SELECT: return this.driverFeatureSelect;
      case CC.DRIVER_FEATURE:
        return this.driverFeatureSelect < 2 ? Number((this.driverFeatures >> BigInt(32 * this.driverFeatureSelect)) & MASK32) : 0;
      case CC.CONFIG_MSIX_VECTOR: return this.configVector;
      case CC.NUM_QUEUES: return this.queues.length;
      case CC.DEVICE_STATUS: return this.status;
      case CC.CONFIG_GENERATION: return this.configGeneration & 0xff;
      case CC.QUEUE_SELECT: return this.queueSelect;
      // A queue that does not exist reads as size 0 (§4.1.4.3.1: "queue_size ... 0 if unavailable").
      case CC.QUEUE_SIZE: return q ? q.size : 0;
      case CC.QUEUE_MSIX_VECTOR: return q ? q.msixVector : VIRTIO_MSI_NO_VECTOR;
      case CC.QUEUE_ENABLE: return q?.ready ? 1 : 0;
      case CC.QUEUE_NOTIFY_OFF: return q ? q.index : 0;
      case CC.QUEUE_DESC_LO: return q ? q.descAddr % 2 ** 32 : 0;
      case CC.QUEUE_DESC_HI: return q ? Math.floor(q.descAddr / 2 ** 32) : 0;
      case CC.QUEUE_DRIVER_LO: return q ? q.availAddr % 2 ** 32 : 0;
      case CC.QUEUE_DRIVER_HI: return q ? Math.floor(q.availAddr / 2 ** 32) : 0;
      case CC.QUEUE_DEVICE_LO: return q ? q.usedAddr % 2 ** 32 : 0;
      case CC.QUEUE_DEVICE_HI: return q ? Math.floor(q.usedAddr / 2 ** 32) : 0;
      default: return 0;
    }
  }

  private commonRead(offset: number, size: number): number {
    let v = 0;
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      const f = COMMON_FIELDS.find(([s, n]) => o >= s && o < s + n);
      const b = f ? (this.commonField(f[0]) >>> (8 * (o - f[0]))) & 0xff : 0;
      v |= b << (8 * i);
    }
    return v >>> 0;
  }

  private commonWrite(offset: number, size: number, value: number): void {
    const end = offset + size;
    for (const [s, n] of COMMON_FIELDS) {
      if (s >= end || s + n <= offset) continue;
      // Merge the written bytes into the field's current value (partial writes keep the rest).
      let v = this.commonField(s);
      for (let o = Math.max(s, offset); o < Math.min(s + n, end); o++) {
        const b = (value >>> (8 * (o - offset))) & 0xff;
        const sh = 8 * (o - s);
        v = (v & ~(0xff << sh)) | (b << sh);
      }
      this.setCommonField(s, v >>> 0);
    }
  }

  private setCommonField(off: number, v: number): void {
    const q = this.selectedQueue;
    // Queue configuration is frozen while the queue is enabled (§4.1.4.3.2: the driver writes it before queue_enable).
    const qw = q && !q.ready ? q : undefined;
    const setLo = (old: number, lo: number): number => Math.floor(old / 2 ** 32) * 2 ** 32 + lo;
    const setHi = (old: number, hi: number): number => (hi >= 0x100000 ? 2 ** 52 : hi * 2 ** 32) + (old % 2 ** 32);
    switch (off) {
      case CC.DEVICE_FEATURE_SELECT: this.deviceFeatureSelect = v; break;
      case CC.DRIVER_FEATURE_SELECT: this.driverFeatureSelect = v; break;
      case CC.DRIVER_FEATURE:
        if (this.status & STATUS_FEATURES_OK || this.driverFeatureSelect > 1) break;
        {
          const sh = BigInt(32 * this.driverFeatureSelect);
          this.driverFeatures = (this.driverFeatures & ~(MASK32 << sh)) | (BigInt(v) << sh);
        }
        break;
      case CC.CONFIG_MSIX_VECTOR: this.configVector = v < this.msix.vectors ? v : VIRTIO_MSI_NO_VECTOR; break;
      case CC.DEVICE_STATUS: this.writeStatus(v & 0xff); break;
      case CC.QUEUE_SELECT: this.queueSelect = v; break;
      case CC.QUEUE_SIZE: if (qw) qw.size = v; break;
      case CC.QUEUE_MSIX_VECTOR: if (q) q.msixVector = v < this.msix.vectors ? v : VIRTIO_MSI_NO_VECTOR; break;
      case CC.QUEUE_ENABLE: if (qw && v === 1) this.enableQueue(qw); break;
      case CC.QUEUE_DESC_LO: if (qw) qw.descAddr = setLo(qw.descAddr, v); break;
      case CC.QUEUE_DESC_HI: if (qw) qw.descAddr = setHi(qw.descAddr, v); break;
      case CC.QUEUE_DRIVER_LO: if (qw) qw.availAddr = setLo(qw.availAddr, v); break;
      case CC.QUEUE_DRIVER_HI: if (qw) qw.availAddr = setHi(qw.availAddr, v); break;
      case CC.QUEUE_DEVICE_LO: if (qw) qw.usedAddr = setLo(qw.usedAddr, v); break;
      case CC.QUEUE_DEVICE_HI: if (qw) qw.usedAddr = setHi(qw.usedAddr, v); break;
      default: break; // read-only fields
    }
  }

  private enableQueue(q: SplitQueue): void {
    try {
      q.enable({
        indirect: (this.driverFeatures & bit(F_RING_INDIRECT_DESC)) !== 0n,
        eventIdx: (this.driverFeatures & bit(F_RING_EVENT_IDX)) !== 0n,
      });
    } catch (e) {
      if (e instanceof VirtqueueError) this.fail(e.message);
      else throw e;
    }
  }

  private writeStatus(v: number): void {
    if (v === 0) {
      this.resetDevice();
      return;
    }
    const old = this.status;
    let s = v | (old & STATUS_DEVICE_NEEDS_RESET);
    if (s & STATUS_FEATURES_OK && !(old & STATUS_FEATURES_OK)) {
      // §2.2.2: accept only a subset of what we offer, and VIRTIO_F_VERSION_1 (§6.1: a modern
      // device may refuse drivers that do not accept it).
      const ok = (this.driverFeatures & ~this.deviceFeatures) === 0n && (this.driverFeatures & bit(F_VERSION_1)) !== 0n;
      if (!ok) {
        s &= ~STATUS_FEATURES_OK;
        this.log(`${this.name}: driver features 0x${this.driverFeatures.toString(16)} refused`);
      }
    }
    this.status = s;
    if (s & STATUS_DRIVER_OK && !(old & STATUS_DRIVER_OK) && s & STATUS_FEATURES_OK && !(s & STATUS_DEVICE_NEEDS_RESET)) {
      this.activate();
    }
  }

  private activate(): void {
    const ctx = new Context(this, this.opts.mem, this.log);
    this.ctx = ctx;
    try {
      this.device.activate(ctx);
    } catch (e) {
      this.internalError(e);
      return;
    }
    // Buffers made available before DRIVER_OK are served now.
    for (const q of this.queues) if (q.ready) this.serve(q.index);
  }

  /** Device reset (§4.1.4.3.1: writing 0 to device_status). */
  private resetDevice(): void {
    if (this.ctx) this.ctx.alive = false;
    this.ctx = undefined;
    try {
      this.device.reset();
    } catch (e) {
      this.log(`${this.name}: reset: ${(e as Error).message}`);
    }
    for (const q of this.queues) q.reset();
    this.status = 0;
    this.driverFeatures = 0n;
    this.deviceFeatureSelect = this.driverFeatureSelect = 0;
    this.queueSelect = 0;
    this.configVector = VIRTIO_MSI_NO_VECTOR;
    this.isr = 0;
    this.setIntx(false);
  }

  /** Machine reset: the PCI function and the virtio device both go back to power-on state. */
  override resetConfig(): void {
    this.resetDevice();
    this.msix.reset();
    super.resetConfig();
  }

  /** What a guest write to queue `q`'s notify register does (also the ioeventfd entry point). */
  kick(q: number): void {
    this.stats.notifies++;
    this.serve(q);
  }

  private serve(q: number): void {
    const ctx = this.ctx;
    if (!ctx?.alive || q < 0 || q >= this.queues.length || !this.queues[q].ready) return;
    try {
      this.device.queueNotify(q);
    } catch (e) {
      if (e instanceof VirtqueueError) this.fail(e.message);
      else this.internalError(e);
    }
  }

  /** The driver broke the rules: DEVICE_NEEDS_RESET and a configuration change notification (§2.1.2). */
  fail(reason: string): void {
    if (this.status & STATUS_DEVICE_NEEDS_RESET) return;
    this.log(`${this.name}: device needs reset: ${reason}`);
    this.status |= STATUS_DEVICE_NEEDS_RESET;
    if (this.ctx) this.ctx.alive = false;
    if (this.status & STATUS_DRIVER_OK) this.signalConfig();
  }

  private internalError(e: unknown): void {
    // A bug of ours must not take the VMM down: the device stops, the guest sees NEEDS_RESET.
    this.fail(`internal error: ${(e as Error)?.stack ?? String(e)}`);
  }

  /** Interrupt for used buffers on queue `q` (§4.1.5.4 / §4.1.4.5). */
  signalQueue(q: number): void {
    this.stats.interrupts++;
    if (this.msix.enabled) {
      const v = this.queues[q].msixVector;
      if (v !== VIRTIO_MSI_NO_VECTOR) this.msix.notify(v);
      return;
    }
    this.raiseIsr(ISR_QUEUE);
  }

  signalConfig(): void {
    this.configGeneration = (this.configGeneration + 1) & 0xff;
    this.stats.interrupts++;
    if (this.msix.enabled) {
      if (this.configVector !== VIRTIO_MSI_NO_VECTOR) this.msix.notify(this.configVector);
      return;
    }
    this.raiseIsr(ISR_CONFIG);
  }

  private raiseIsr(bits: number): void {
    this.isr |= bits;
    this.stats.intx++;
    this.setIntx(true);
  }

  async close(): Promise<void> {
    if (this.ctx) this.ctx.alive = false;
    await this.device.close?.();
  }
}

/** One activation of the device: dies on reset or failure, so late completions are dropped. */
class Context implements VirtioDeviceContext {
  alive = true;
  private readonly dirty = new Set<number>();
  private flushQueued = false;

  constructor(
    private readonly t: VirtioPciDevice,
    readonly mem: GuestMemory,
    private readonly logger: (line: string) => void,
  ) {}

  get queues(): readonly SplitQueue[] { return this.t.queues; }
  get features(): bigint { return this.t.negotiatedFeatures; }

  complete(q: number, head: number, len: number): void {
    if (!this.alive) return;
    this.t.queues[q].push(head, len);
    this.dirty.add(q);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Send the interrupts owed for this turn's completions. */
  flush(): void {
    this.flushQueued = false;
    if (!this.alive) {
      this.dirty.clear();
      return;
    }
    for (const q of this.dirty) {
      if (this.t.queues[q].needsInterrupt()) this.t.signalQueue(q);
    }
    this.dirty.clear();
  }

  configChanged(): void {
    if (this.alive) this.t.signalConfig();
  }

  fail(reason: string): void {
    this.t.fail(reason);
  }

  log(line: string): void {
    this.logger(`${this.t.name}: ${line}`);
  }
}
