// One PCI function: its 256-byte type 0 configuration header (PCI Local Bus Specification 3.0,
// §6.1 "Configuration Space Organization"), its capabilities list (§6.7), its Base Address
// Registers (§6.2.5.1) and its INTx pin (§6.2.4, Interrupt Pin/Line; §2.2.6 INTx#).
//
// Register semantics are expressed with per-byte masks, the way the hardware behaves:
// `wmask` says which bits a guest write may change, `w1cmask` which bits a write of 1 clears
// (the Status register's error bits, §6.2.3). BAR sizing falls out of the masks: the low bits of
// a BAR that cover its size are read-only zero, the type bits read-only, so writing all ones and
// reading back gives ~(size - 1) | type, exactly as §6.2.5.1 describes the sizing procedure.
//
// Nothing a guest writes here may throw: malformed accesses are ignored or read as all ones.

/** Offsets in the type 0 header (PCI 3.0 §6.1, Figure 6-1). */
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BAR0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;

/** Command register bits (§6.2.2). */
export const PCI_COMMAND_IO = 0x0001;
export const PCI_COMMAND_MEMORY = 0x0002;
export const PCI_COMMAND_MASTER = 0x0004;
export const PCI_COMMAND_PARITY = 0x0040;
export const PCI_COMMAND_SERR = 0x0100;
export const PCI_COMMAND_INTX_DISABLE = 0x0400;

/** Status register bits (§6.2.3). */
export const PCI_STATUS_INTERRUPT = 0x0008;
export const PCI_STATUS_CAP_LIST = 0x0010;
/** Error bits, write-1-to-clear: master/target aborts, SERR, parity (§6.2.3). */
const PCI_STATUS_W1C = 0xf900;

/** BAR low bits (§6.2.5.1): bit 0 I/O space; for memory, bits 2:1 type (00 32-bit, 10 64-bit), bit 3 prefetchable. */
export const PCI_BAR_IO = 0x1;
export const PCI_BAR_MEM_TYPE_64 = 0x4;
export const PCI_BAR_MEM_PREFETCH = 0x8;

export const PCI_CFG_SIZE = 256;
/** Capabilities live after the predefined header (§6.7: "the first 64 bytes"), dword aligned. */
const CAP_START = 0x40;

/** What sits behind a BAR: accesses arrive with the offset from the BAR's base. */
export interface BarHandler {
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

export type BarKind = 'mem32' | 'mem64' | 'io';

export interface BarDef {
  readonly index: number;
  readonly kind: BarKind;
  /** A power of two: at least 16 bytes for memory, 4 for I/O (§6.2.5.1). */
  readonly size: number;
  readonly prefetchable: boolean;
  readonly handler: BarHandler;
}

export interface PciIds {
  vendorId: number;
  deviceId: number;
  /** 24-bit class code: base class << 16 | sub-class << 8 | programming interface. */
  classCode: number;
  revision?: number;
  subsystemVendorId?: number;
  subsystemId?: number;
}

/** Where a function's INTx pin goes, set by the bus when the function is attached. */
export interface IntxSink {
  setIntx(level: boolean): void;
}

/** Side effects of a capability's registers: offsets are relative to the capability's start. */
export interface CapabilityHooks {
  /** A value to return instead of the stored bytes, or undefined to read them. */
  read?(offset: number, size: 1 | 2 | 4): number | undefined;
  /** Called after the masked write has been stored. */
  write?(offset: number, size: 1 | 2 | 4, value: number): void;
}

interface CapRange {
  readonly start: number;
  readonly length: number;
  readonly hooks: CapabilityHooks;
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/**
 * A PCI function with a type 0 header. Subclasses add BARs and capabilities in their
 * constructor and may intercept config accesses (`configRead`/`configWrite` overrides) for
 * registers with side effects.
 */
export class PciDevice {
  /** The 256 bytes the guest reads (registers with side effects are overridden by subclasses). */
  protected readonly cfg = new Uint8Array(PCI_CFG_SIZE);
  protected readonly wmask = new Uint8Array(PCI_CFG_SIZE);
  protected readonly w1cmask = new Uint8Array(PCI_CFG_SIZE);
  protected readonly cfgView = new DataView(this.cfg.buffer);
  readonly bars: (BarDef | undefined)[] = [undefined, undefined, undefined, undefined, undefined, undefined];
  private lastCap = 0;
  private readonly capRanges: CapRange[] = [];
  private nextCap = CAP_START;
  private intxSink?: IntxSink;
  private intxLevel = false;
  /** Called after any config write that may move or enable/disable BARs (set by the bus). */
  onDecodeChange?: () => void;

  constructor(
    readonly name: string,
    ids: PciIds,
  ) {
    const v = this.cfgView;
    v.setUint16(PCI_VENDOR_ID, ids.vendorId, true);
    v.setUint16(PCI_DEVICE_ID, ids.deviceId, true);
    this.cfg[PCI_REVISION_ID] = ids.revision ?? 0;
    this.cfg[PCI_CLASS_PROG] = ids.classCode & 0xff;
    v.setUint16(PCI_CLASS_DEVICE, (ids.classCode >> 8) & 0xffff, true);
    this.cfg[PCI_HEADER_TYPE] = 0x00; // type 0, single function
    v.setUint16(PCI_SUBSYSTEM_VENDOR_ID, ids.subsystemVendorId ?? 0, true);
    v.setUint16(PCI_SUBSYSTEM_ID, ids.subsystemId ?? 0, true);
    // Command: I/O, memory, bus master, parity, SERR, interrupt disable are writable (§6.2.2).
    const cmdMask = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE;
    this.wmask[PCI_COMMAND] = cmdMask & 0xff;
    this.wmask[PCI_COMMAND + 1] = cmdMask >> 8;
    this.w1cmask[PCI_STATUS] = PCI_STATUS_W1C & 0xff;
    this.w1cmask[PCI_STATUS + 1] = PCI_STATUS_W1C >> 8;
    // Cache line size and latency timer are read/write scratch registers (§6.2.4).
    this.wmask[0x0c] = 0xff;
    this.wmask[0x0d] = 0xff;
    // Interrupt Line: written by firmware/OS, no effect on the device (§6.2.4).
    this.wmask[PCI_INTERRUPT_LINE] = 0xff;
    // Expansion ROM BAR (0x30): no ROM, so it stays hard-wired to zero (§6.2.5.2).
  }

  get vendorId(): number { return this.cfgView.getUint16(PCI_VENDOR_ID, true); }
  get deviceId(): number { return this.cfgView.getUint16(PCI_DEVICE_ID, true); }
  get command(): number { return this.cfgView.getUint16(PCI_COMMAND, true); }
  get busMasterEnabled(): boolean { return (this.command & PCI_COMMAND_MASTER) !== 0; }
  get interruptPin(): number { return this.cfg[PCI_INTERRUPT_PIN]; }

  /**
   * Declare BAR `index` (for 'mem64', also index+1, which holds the high dword). Must happen
   * before the function is attached to a bus.
   */
  addBar(index: number, kind: BarKind, size: number, handler: BarHandler, prefetchable = false): BarDef {
    if (!Number.isInteger(index) || index < 0 || index > 5 || (kind === 'mem64' && index > 4)) throw new RangeError(`bad BAR index ${index}`);
    if (this.bars[index] || (kind === 'mem64' && this.bars[index + 1])) throw new RangeError(`BAR ${index} already in use`);
    if (!isPowerOfTwo(size) || size < (kind === 'io' ? 4 : 16) || (kind === 'io' && size > 256) || (kind === 'mem32' && size > 0x80000000)) {
      throw new RangeError(`bad BAR size ${size}`);
    }
    const def: BarDef = { index, kind, size, prefetchable, handler };
    this.bars[index] = def;
    const off = PCI_BAR0 + 4 * index;
    const low = kind === 'io' ? PCI_BAR_IO : (kind === 'mem64' ? PCI_BAR_MEM_TYPE_64 : 0) | (prefetchable ? PCI_BAR_MEM_PREFETCH : 0);
    this.cfgView.setUint32(off, low, true);
    // Writable address bits: those at or above log2(size) (§6.2.5.1). 32-bit arithmetic on the low dword.
    const lowMask = size >= 2 ** 32 ? 0 : (~(size - 1) >>> 0) & (kind === 'io' ? 0xfffffffc : 0xfffffff0);
    new DataView(this.wmask.buffer).setUint32(off, lowMask, true);
    if (kind === 'mem64') {
      const highMask = size > 2 ** 32 ? (~(size / 2 ** 32 - 1) >>> 0) : 0xffffffff;
      new DataView(this.wmask.buffer).setUint32(off + 4, highMask, true);
    }
    return def;
  }

  /** The address BAR `index` is programmed with (without type bits), or undefined if it is not a BAR. */
  barAddress(index: number): number | undefined {
    const def = this.bars[index];
    if (!def) return undefined;
    const off = PCI_BAR0 + 4 * index;
    const low = this.cfgView.getUint32(off, true);
    if (def.kind === 'io') return (low & 0xfffffffc) >>> 0;
    const base = (low & 0xfffffff0) >>> 0;
    if (def.kind === 'mem64') return base + this.cfgView.getUint32(off + 4, true) * 2 ** 32;
    return base;
  }

  /** Firmware-style placement (used when attaching): write the BAR's address. */
  setBarAddress(index: number, addr: number): void {
    const def = this.bars[index];
    if (!def) return;
    const off = PCI_BAR0 + 4 * index;
    const typeBits = this.cfgView.getUint32(off, true) & (def.kind === 'io' ? 0x3 : 0xf);
    this.cfgView.setUint32(off, ((addr % 2 ** 32) | typeBits) >>> 0, true);
    if (def.kind === 'mem64') this.cfgView.setUint32(off + 4, Math.floor(addr / 2 ** 32) >>> 0, true);
  }

  /**
   * Add a capability with ID `id` and `length` bytes (header included), linked at the end of the
   * list (§6.7: ID byte, next pointer byte, then the body). Returns its offset in config space.
   */
  addCapability(id: number, length: number, hooks?: CapabilityHooks): number {
    const off = this.nextCap;
    if (length < 2 || off + length > PCI_CFG_SIZE) throw new RangeError('PCI capability does not fit in config space');
    this.cfg[off] = id;
    this.cfg[off + 1] = 0;
    if (this.lastCap === 0) this.cfg[PCI_CAPABILITY_LIST] = off;
    else this.cfg[this.lastCap + 1] = off;
    this.cfgView.setUint16(PCI_STATUS, this.cfgView.getUint16(PCI_STATUS, true) | PCI_STATUS_CAP_LIST, true);
    this.lastCap = off;
    this.nextCap = (off + length + 3) & ~3;
    if (hooks) this.capRanges.push({ start: off, length, hooks });
    return off;
  }

  /** Make bits of config space guest-writable (capability registers); `mask` is little-endian. */
  setWritable(offset: number, size: 1 | 2 | 4, mask: number): void {
    for (let i = 0; i < size; i++) this.wmask[offset + i] = (mask >>> (8 * i)) & 0xff;
  }

  /** Host-side store into config space (capability registers the device updates). */
  setConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    for (let i = 0; i < size; i++) this.cfg[offset + i] = (value >>> (8 * i)) & 0xff;
  }

  getConfig(offset: number, size: 1 | 2 | 4): number {
    return this.readStored(offset, size);
  }

  private readStored(offset: number, size: 1 | 2 | 4): number {
    if (size === 1) return this.cfg[offset];
    if (size === 2) return this.cfgView.getUint16(offset, true);
    return this.cfgView.getUint32(offset, true);
  }

  protected setInterruptPin(pin: number): void {
    this.cfg[PCI_INTERRUPT_PIN] = pin;
  }

  /** Called by the bus: where INTx goes and the GSI to report in Interrupt Line. */
  connectIntx(sink: IntxSink, line: number): void {
    this.intxSink = sink;
    this.cfg[PCI_INTERRUPT_LINE] = line & 0xff;
  }

  /**
   * Drive this function's INTx (level-triggered, §2.2.6). The Status register's Interrupt Status
   * bit follows the device's request; the pin itself is held low while the Command register's
   * Interrupt Disable bit is set (§6.2.2, §6.2.3).
   */
  setIntx(level: boolean): void {
    this.intxLevel = level;
    const st = this.cfgView.getUint16(PCI_STATUS, true);
    this.cfgView.setUint16(PCI_STATUS, level ? st | PCI_STATUS_INTERRUPT : st & ~PCI_STATUS_INTERRUPT, true);
    this.driveIntx();
  }

  private driveIntx(): void {
    this.intxSink?.setIntx(this.intxLevel && (this.command & PCI_COMMAND_INTX_DISABLE) === 0);
  }

  /** A config-space read of `size` bytes at `offset` (already checked to lie within 0..255). */
  configRead(offset: number, size: 1 | 2 | 4): number {
    for (const c of this.capRanges) {
      if (offset >= c.start && offset + size <= c.start + c.length && c.hooks.read) {
        const v = c.hooks.read(offset - c.start, size);
        if (v !== undefined) return v >>> 0;
      }
    }
    return this.readStored(offset, size);
  }

  /** A config-space write: masked per byte, then side effects. */
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      const b = (value >>> (8 * i)) & 0xff;
      const w = this.wmask[o];
      this.cfg[o] = ((this.cfg[o] & ~w) | (b & w)) & ~(b & this.w1cmask[o]);
    }
    const end = offset + size;
    const touches = (start: number, len: number): boolean => offset < start + len && start < end;
    if (touches(PCI_COMMAND, 2)) this.driveIntx();
    if (touches(PCI_COMMAND, 2) || touches(PCI_BAR0, 24)) this.onDecodeChange?.();
    for (const c of this.capRanges) {
      if (touches(c.start, c.length) && c.hooks.write) {
        // Clip the access to the capability; offsets relative to its start.
        const s = Math.max(offset, c.start);
        const e = Math.min(end, c.start + c.length);
        const n = e - s;
        if (n === 1 || n === 2 || n === 4) c.hooks.write(s - c.start, n, (value >>> (8 * (s - offset))) & (n === 4 ? 0xffffffff : (1 << (8 * n)) - 1));
      }
    }
    this.afterConfigWrite(offset, size);
  }

  /**
   * Called by the bus when BAR `index` starts or stops being decoded at `addr` (undefined:
   * no longer mapped). Transports use it to move host-side fast paths (KVM ioeventfds).
   */
  barMapped(_index: number, _addr: number | undefined): void {}

  /** Hook for subclasses: registers with side effects (capabilities) react here. */
  protected afterConfigWrite(_offset: number, _size: number): void {}

  /** Device reset (e.g. machine reset): command cleared, device-specific state by subclasses. */
  resetConfig(): void {
    this.cfgView.setUint16(PCI_COMMAND, 0, true);
    this.setIntx(false);
    this.onDecodeChange?.();
  }
}
