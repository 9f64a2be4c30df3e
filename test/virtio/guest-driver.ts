// A test double of a guest: guest RAM with guard bytes around it, the machine bus with the PCI
// root on it, and a virtio-pci driver that does what Linux's virtio_pci_modern does (through
// port 0xCF8/0xCFC config cycles and BAR MMIO), plus a split-ring driver that writes descriptors
// into guest memory, kicks and reads the used ring. No CPU involved.
import { Bus } from '../../src/devices/bus.js';
import { NullIrqSink } from '../../src/devices/irq.js';
import { PciRoot } from '../../src/devices/pci/pci-root.js';
import type { PciDevice } from '../../src/devices/pci/pci-device.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import {
  F_RING_EVENT_IDX, F_RING_INDIRECT_DESC, F_VERSION_1, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK,
  STATUS_FEATURES_OK, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, bit,
} from '../../src/devices/virtio/constants.js';
import { CC } from '../../src/devices/virtio/pci-transport.js';

export const GUARD = 64 * 1024;
export const GUARD_BYTE = 0xa5;

export class RecordingMsi {
  readonly log: { address: number; data: number }[] = [];
  signalMsi(address: number, data: number): void { this.log.push({ address, data }); }
}

/** Guest RAM inside a larger SharedArrayBuffer whose bytes before and after RAM are guards. */
export function guardedMemory(ramSize: number): { mem: GuestMemory; guardsIntact: () => boolean } {
  const buffer = new SharedArrayBuffer(GUARD + ramSize + GUARD);
  const all = new Uint8Array(buffer);
  all.fill(GUARD_BYTE, 0, GUARD);
  all.fill(GUARD_BYTE, GUARD + ramSize);
  const mem = new GuestMemory(ramSize, 0, { buffer, base: GUARD });
  const guardsIntact = (): boolean => {
    for (let i = 0; i < GUARD; i++) if (all[i] !== GUARD_BYTE) return false;
    for (let i = GUARD + ramSize; i < all.length; i++) if (all[i] !== GUARD_BYTE) return false;
    return true;
  };
  return { mem, guardsIntact };
}

export class TestMachine {
  readonly bus = new Bus();
  readonly irq = new NullIrqSink();
  readonly msi = new RecordingMsi();
  readonly mem: GuestMemory;
  readonly guardsIntact: () => boolean;
  readonly root: PciRoot;
  readonly logs: string[] = [];

  constructor(ramSize = 16 << 20) {
    const g = guardedMemory(ramSize);
    this.mem = g.mem;
    this.guardsIntact = g.guardsIntact;
    this.root = new PciRoot({ bus: this.bus, irq: this.irq, log: (l) => this.logs.push(l) });
    this.root.attachToBus();
  }

  attach(dev: PciDevice, slot?: number): number {
    return this.root.attach(dev, slot);
  }

  /** Configuration mechanism #1 (PCI 3.0 §3.2.2.3.2). */
  cfgRead(slot: number, reg: number, size: 1 | 2 | 4): number {
    this.bus.pioWrite(0xcf8, 4, (0x80000000 | (slot << 11) | (reg & 0xfc)) >>> 0);
    return this.bus.pioRead(0xcfc + (reg & 3), size);
  }

  cfgWrite(slot: number, reg: number, size: 1 | 2 | 4, value: number): void {
    this.bus.pioWrite(0xcf8, 4, (0x80000000 | (slot << 11) | (reg & 0xfc)) >>> 0);
    this.bus.pioWrite(0xcfc + (reg & 3), size, value);
  }

  /** Capability offsets with their IDs, walked as Linux's pci_find_capability does. */
  capabilities(slot: number): { id: number; off: number }[] {
    const out: { id: number; off: number }[] = [];
    if (!(this.cfgRead(slot, 0x06, 2) & 0x10)) return out;
    let off = this.cfgRead(slot, 0x34, 1) & 0xfc;
    for (let ttl = 48; off >= 0x40 && ttl > 0; ttl--) {
      out.push({ id: this.cfgRead(slot, off, 1), off });
      off = this.cfgRead(slot, off + 1, 1) & 0xfc;
    }
    return out;
  }

  /** BAR sizing as Linux's __pci_read_base: decode off, write ones, read back, restore. */
  sizeBar(slot: number, index: number): { addr: number; size: number; is64: boolean; io: boolean } {
    const reg = 0x10 + 4 * index;
    const cmd = this.cfgRead(slot, 4, 2);
    this.cfgWrite(slot, 4, 2, cmd & ~3);
    const orig = this.cfgRead(slot, reg, 4);
    const io = (orig & 1) === 1;
    const is64 = !io && (orig & 6) === 4;
    this.cfgWrite(slot, reg, 4, 0xffffffff);
    const lo = this.cfgRead(slot, reg, 4);
    this.cfgWrite(slot, reg, 4, orig);
    let hi = 0xffffffff;
    let origHi = 0;
    if (is64) {
      origHi = this.cfgRead(slot, reg + 4, 4);
      this.cfgWrite(slot, reg + 4, 4, 0xffffffff);
      hi = this.cfgRead(slot, reg + 4, 4);
      this.cfgWrite(slot, reg + 4, 4, origHi);
    }
    this.cfgWrite(slot, 4, 2, cmd);
    const maskLo = (lo & (io ? 0xfffffffc : 0xfffffff0)) >>> 0;
    const mask = BigInt(maskLo) | (BigInt(is64 ? hi : 0xffffffff) << 32n);
    const size = Number((~mask & 0xffffffffffffffffn) + 1n);
    const addr = ((orig & (io ? 0xfffffffc : 0xfffffff0)) >>> 0) + origHi * 2 ** 32;
    return { addr, size, is64, io };
  }
}

export interface VirtioCaps {
  common: number;
  notify: number;
  notifyMultiplier: number;
  isr: number;
  device?: number;
  pciCfg?: number;
}

/** A bump allocator over guest RAM for rings and buffers. */
export class GuestAlloc {
  private readonly start: number;
  constructor(private next: number, private readonly end: number) {
    this.start = next;
  }
  reset(): void {
    this.next = this.start;
  }
  alloc(size: number, align = 16): number {
    const a = Math.ceil(this.next / align) * align;
    if (a + size > this.end) throw new Error('test guest out of memory');
    this.next = a + size;
    return a;
  }
}

export interface Buf {
  addr: number;
  len: number;
  write?: boolean;
}

/** The driver side of one split virtqueue. */
export class DriverQueue {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  private freeList: number[];
  private availIdx = 0;
  lastUsed = 0;

  constructor(
    private readonly drv: VirtioDriver,
    readonly index: number,
    readonly size: number,
    alloc: GuestAlloc,
  ) {
    this.desc = alloc.alloc(16 * size, 16);
    this.avail = alloc.alloc(6 + 2 * size, 2);
    this.used = alloc.alloc(6 + 8 * size, 4);
    drv.mem.fill(this.desc, 16 * size, 0);
    drv.mem.fill(this.avail, 6 + 2 * size, 0);
    drv.mem.fill(this.used, 6 + 8 * size, 0);
    this.freeList = Array.from({ length: size }, (_, i) => i);
  }

  writeDesc(table: number, i: number, addr: number, len: number, flags: number, next: number): void {
    const m = this.drv.mem;
    const d = table + 16 * i;
    m.writeU64(d, BigInt(addr));
    m.writeU32(d + 8, len);
    m.writeU16(d + 12, flags);
    m.writeU16(d + 14, next);
  }

  /** Put a chain in the descriptor table (or an indirect table) and publish it; returns the head. */
  add(bufs: Buf[], opts: { indirect?: number } = {}): number {
    if (opts.indirect !== undefined) {
      const t = opts.indirect;
      bufs.forEach((b, i) => this.writeDesc(t, i, b.addr, b.len, (b.write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < bufs.length ? VIRTQ_DESC_F_NEXT : 0), i + 1));
      const head = this.freeList.shift();
      if (head === undefined) throw new Error('queue full');
      this.writeDesc(this.desc, head, t, 16 * bufs.length, VIRTQ_DESC_F_INDIRECT, 0);
      this.publish(head);
      return head;
    }
    const ids = bufs.map(() => {
      const id = this.freeList.shift();
      if (id === undefined) throw new Error('queue full');
      return id;
    });
    bufs.forEach((b, i) => this.writeDesc(this.desc, ids[i], b.addr, b.len, (b.write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < bufs.length ? VIRTQ_DESC_F_NEXT : 0), ids[i + 1] ?? 0));
    this.publish(ids[0]);
    return ids[0];
  }

  /** Publish `head` in the available ring (raw: any head value, for hostile tests). */
  publish(head: number): void {
    const m = this.drv.mem;
    m.writeU16(this.avail + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    m.writeU16(this.avail + 2, this.availIdx);
  }

  setAvailIdx(v: number): void {
    this.availIdx = v & 0xffff;
    this.drv.mem.writeU16(this.avail + 2, this.availIdx);
  }

  kick(): void {
    this.drv.kick(this.index);
  }

  usedIdx(): number {
    return this.drv.mem.readU16(this.used + 2);
  }

  /** New used elements since the last call. */
  takeUsed(): { id: number; len: number }[] {
    const out: { id: number; len: number }[] = [];
    const m = this.drv.mem;
    while (this.lastUsed !== this.usedIdx()) {
      const e = this.used + 4 + 8 * (this.lastUsed % this.size);
      out.push({ id: m.readU32(e), len: m.readU32(e + 4) });
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  /** Free descriptors of a completed direct chain (test bookkeeping). */
  recycle(ids: number[]): void {
    this.freeList.push(...ids);
  }

  setUsedEvent(v: number): void {
    this.drv.mem.writeU16(this.avail + 4 + 2 * this.size, v);
  }

  availEvent(): number {
    return this.drv.mem.readU16(this.used + 4 + 8 * this.size);
  }

  setNoInterrupt(on: boolean): void {
    this.drv.mem.writeU16(this.avail, on ? 1 : 0);
  }
}

export class VirtioDriver {
  readonly mem: GuestMemory;
  bar = 0;
  caps!: VirtioCaps;
  readonly alloc: GuestAlloc;
  queues: DriverQueue[] = [];
  msixCap = 0;

  constructor(
    readonly m: TestMachine,
    readonly slot: number,
  ) {
    this.mem = m.mem;
    this.alloc = new GuestAlloc(0x100000, m.mem.ramSize);
  }

  /** Find the BAR and the virtio capabilities, enable memory decoding and bus mastering. */
  probe(): void {
    const { m, slot } = this;
    const caps: Partial<VirtioCaps> = {};
    for (const c of m.capabilities(slot)) {
      if (c.id === 0x11) this.msixCap = c.off;
      if (c.id !== 0x09) continue;
      const type = m.cfgRead(slot, c.off + 3, 1);
      const barIdx = m.cfgRead(slot, c.off + 4, 1);
      const off = m.cfgRead(slot, c.off + 8, 4);
      if (barIdx !== 0 && type !== 5) throw new Error('unexpected BAR');
      if (type === 1) caps.common = off;
      if (type === 2) {
        caps.notify = off;
        caps.notifyMultiplier = m.cfgRead(slot, c.off + 16, 4);
      }
      if (type === 3) caps.isr = off;
      if (type === 4) caps.device = off;
      if (type === 5) caps.pciCfg = c.off;
    }
    this.caps = caps as VirtioCaps;
    this.bar = m.sizeBar(slot, 0).addr;
    m.cfgWrite(slot, 4, 2, m.cfgRead(slot, 4, 2) | 0x6); // memory space + bus master
  }

  r(off: number, size: 1 | 2 | 4): number { return this.m.bus.mmioRead(this.bar + off, size); }
  w(off: number, size: 1 | 2 | 4, v: number): void { this.m.bus.mmioWrite(this.bar + off, size, v); }
  common(reg: number, size: 1 | 2 | 4): number { return this.r(this.caps.common + reg, size); }
  setCommon(reg: number, size: 1 | 2 | 4, v: number): void { this.w(this.caps.common + reg, size, v); }
  status(): number { return this.common(CC.DEVICE_STATUS, 1); }
  deviceConfig(off: number, size: 1 | 2 | 4): number { return this.r(this.caps.device! + off, size); }
  readIsr(): number { return this.r(this.caps.isr, 1); }

  deviceFeatures(): bigint {
    this.setCommon(CC.DEVICE_FEATURE_SELECT, 4, 0);
    const lo = this.common(CC.DEVICE_FEATURE, 4);
    this.setCommon(CC.DEVICE_FEATURE_SELECT, 4, 1);
    const hi = this.common(CC.DEVICE_FEATURE, 4);
    return BigInt(lo) | (BigInt(hi) << 32n);
  }

  /**
   * The initialization sequence of §3.1.1: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK,
   * queues, (MSI-X vectors), DRIVER_OK.
   */
  init(opts: { features?: bigint; extra?: bigint; queueSizes?: number[]; msix?: boolean; eventIdx?: boolean; indirect?: boolean } = {}): void {
    this.probe();
    this.setCommon(CC.DEVICE_STATUS, 1, 0);
    this.setCommon(CC.DEVICE_STATUS, 1, STATUS_ACKNOWLEDGE);
    this.setCommon(CC.DEVICE_STATUS, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    const offered = this.deviceFeatures();
    let want = opts.features ?? (bit(F_VERSION_1) | (opts.extra ?? 0n));
    if (opts.eventIdx) want |= bit(F_RING_EVENT_IDX);
    if (opts.indirect ?? true) want |= bit(F_RING_INDIRECT_DESC);
    want &= offered | (opts.features ?? 0n);
    this.setCommon(CC.DRIVER_FEATURE_SELECT, 4, 0);
    this.setCommon(CC.DRIVER_FEATURE, 4, Number(want & 0xffffffffn));
    this.setCommon(CC.DRIVER_FEATURE_SELECT, 4, 1);
    this.setCommon(CC.DRIVER_FEATURE, 4, Number(want >> 32n));
    this.setCommon(CC.DEVICE_STATUS, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    if (!(this.status() & STATUS_FEATURES_OK)) throw new Error('FEATURES_OK refused');
    if (opts.msix) this.enableMsix();
    const n = this.common(CC.NUM_QUEUES, 2);
    this.queues = [];
    for (let q = 0; q < n; q++) {
      this.setCommon(CC.QUEUE_SELECT, 2, q);
      const max = this.common(CC.QUEUE_SIZE, 2);
      const size = Math.min(max, opts.queueSizes?.[q] ?? max);
      this.setCommon(CC.QUEUE_SIZE, 2, size);
      const dq = new DriverQueue(this, q, size, this.alloc);
      this.setCommon(CC.QUEUE_DESC_LO, 4, dq.desc);
      this.setCommon(CC.QUEUE_DESC_HI, 4, 0);
      this.setCommon(CC.QUEUE_DRIVER_LO, 4, dq.avail);
      this.setCommon(CC.QUEUE_DRIVER_HI, 4, 0);
      this.setCommon(CC.QUEUE_DEVICE_LO, 4, dq.used);
      this.setCommon(CC.QUEUE_DEVICE_HI, 4, 0);
      if (opts.msix) this.setCommon(CC.QUEUE_MSIX_VECTOR, 2, q + 1);
      this.setCommon(CC.QUEUE_ENABLE, 2, 1);
      this.queues.push(dq);
    }
    if (opts.msix) this.setCommon(CC.CONFIG_MSIX_VECTOR, 2, 0);
    this.setCommon(CC.DEVICE_STATUS, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  }

  /** MSI-X on, every vector unmasked with address 0xFEE00000 and data = 0x40 + vector. */
  enableMsix(): void {
    const { m, slot } = this;
    const ctrl = m.cfgRead(slot, this.msixCap + 2, 2);
    const n = (ctrl & 0x7ff) + 1;
    const table = m.cfgRead(slot, this.msixCap + 4, 4) & ~7;
    for (let v = 0; v < n; v++) {
      this.w(table + 16 * v, 4, 0xfee00000);
      this.w(table + 16 * v + 4, 4, 0);
      this.w(table + 16 * v + 8, 4, 0x40 + v);
      this.w(table + 16 * v + 12, 4, 0);
    }
    m.cfgWrite(slot, this.msixCap + 2, 2, ctrl | 0x8000);
  }

  kick(q: number): void {
    this.w(this.caps.notify + q * this.caps.notifyMultiplier, 2, q);
  }
}

/** Let microtasks and pending promise chains run (completions, interrupt batching). */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}
