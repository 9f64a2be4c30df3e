// Guest physical memory: one SharedArrayBuffer that every thread (KVM vCPU workers, the device
// models, the software CPU) sees, laid out like a PC: RAM from 0 up to the start of the 32-bit
// MMIO hole, and the rest of RAM (when the guest has more than fits below the hole) from 4 GiB up.
//
// The buffer is over-allocated by 2 MiB so that the region registered with KVM can start on a
// 2 MiB boundary of the host address space (KVM can then back it with huge pages); the address
// is only known once the buffer exists, so `alignOffset` is set by whoever learns it (the KVM
// backend through koffi). Everything else addresses RAM through `gpaToOffset`.

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Start of the 32-bit MMIO hole (PCI BARs, IOAPIC 0xFEC00000, LAPIC 0xFEE00000, firmware). */
export const MMIO_HOLE_START = 3 * GiB;
/** RAM that does not fit below the hole is mapped from here (the usual PC layout). */
export const HIGH_RAM_START = 4 * GiB;
export const HUGE_PAGE = 2 * MiB;
/**
 * Node 20's typed arrays stop at 4 GiB, and all guest memory is one buffer with one view, so
 * guest RAM is limited to 4 GiB minus the alignment slack and the largest firmware. (Larger guests
 * need the memory split into several buffers: a later change.)
 */
const MAX_BACKING_BYTES = 4 * GiB - 1;
export const MAX_GUEST_RAM = 4 * GiB - 32 * MiB;

/** One contiguous run of guest-physical RAM (or ROM) and where it lives in the backing buffer. */
export interface RamRegion {
  readonly gpa: number;
  readonly size: number;
  /** Offset into `GuestMemory.bytes` (already including the alignment offset). */
  readonly offset: number;
  /** Firmware ROM: the guest reads it like RAM, its writes are dropped. */
  readonly readonly: boolean;
}

/** What another thread needs to see the same guest memory (sent with postMessage). */
export interface SharedGuestMemory {
  buffer: SharedArrayBuffer;
  ramSize: number;
  romSize: number;
  base: number;
}

export class GuestMemoryError extends Error {}

export class GuestMemory {
  readonly buffer: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly ramSize: number;
  /** Bytes of firmware ROM mapped just below 4 GiB (0 when there is none). */
  readonly romSize: number;
  readonly regions: readonly RamRegion[];
  /** Offset of guest-physical 0 within `buffer`; chosen so that its host address is 2 MiB aligned. */
  readonly base: number;
  /**
   * The WebAssembly.Memory whose buffer this is, when there is one (the software CPU's: guest RAM
   * lives inside its wasm memory). Host-side wasm such as the kernel's LZ4 decoder can then write
   * guest RAM directly, at `base` + an offset. Not carried to other threads.
   */
  readonly wasmMemory?: object;

  /**
   * @param ramSize bytes of guest RAM (a multiple of 4 KiB)
   * @param romSize bytes of firmware ROM to map so that it ends at 4 GiB (a multiple of 4 KiB)
   */
  constructor(ramSize: number, romSize = 0, shared?: { buffer: SharedArrayBuffer; base: number; wasmMemory?: object }) {
    if (!Number.isSafeInteger(ramSize) || ramSize <= 0 || ramSize % 4096 !== 0) {
      throw new GuestMemoryError(`guest RAM size ${ramSize} is not a positive multiple of 4 KiB`);
    }
    if (!Number.isSafeInteger(romSize) || romSize < 0 || romSize % 4096 !== 0 || romSize > 16 * MiB) {
      throw new GuestMemoryError(`firmware size ${romSize} is not a multiple of 4 KiB up to 16 MiB`);
    }
    this.ramSize = ramSize;
    this.romSize = romSize;
    const total = ramSize + romSize;
    if (!shared && (ramSize > MAX_GUEST_RAM || total + HUGE_PAGE > MAX_BACKING_BYTES)) {
      throw new GuestMemoryError(
        `${Math.round(ramSize / MiB)} MiB of guest RAM is more than tsvm supports yet (at most ${MAX_GUEST_RAM / MiB} MiB): use a smaller --memory`,
      );
    }
    if (shared) {
      this.buffer = shared.buffer;
    } else {
      try {
        this.buffer = new SharedArrayBuffer(total + HUGE_PAGE);
      } catch {
        throw new GuestMemoryError(
          `cannot allocate ${Math.round(ramSize / MiB)} MiB of guest RAM on this host; ask for less with --memory`,
        );
      }
    }
    const base = shared?.base ?? 0;
    if (base < 0 || base + total > this.buffer.byteLength) {
      throw new GuestMemoryError('guest RAM alignment offset is outside the backing buffer');
    }
    this.base = base;
    this.wasmMemory = shared?.wasmMemory;
    this.bytes = new Uint8Array(this.buffer, base, total);
    this.view = new DataView(this.buffer, base, total);
    const low = Math.min(ramSize, MMIO_HOLE_START);
    const regions: RamRegion[] = [{ gpa: 0, size: low, offset: 0, readonly: false }];
    if (ramSize > low) regions.push({ gpa: HIGH_RAM_START, size: ramSize - low, offset: low, readonly: false });
    if (romSize > 0) regions.push({ gpa: HIGH_RAM_START - romSize, size: romSize, offset: ramSize, readonly: true });
    this.regions = regions;
  }

  /** This memory seen from another base (used once the aligned host address is known). */
  rebased(base: number): GuestMemory {
    return new GuestMemory(this.ramSize, this.romSize, { buffer: this.buffer, base });
  }

  toShared(): SharedGuestMemory {
    return { buffer: this.buffer, ramSize: this.ramSize, romSize: this.romSize, base: this.base };
  }

  static fromShared(s: SharedGuestMemory): GuestMemory {
    return new GuestMemory(s.ramSize, s.romSize, { buffer: s.buffer, base: s.base });
  }

  /**
   * Offset into `bytes` of [gpa, gpa+len), or -1 when any part of it is not RAM/ROM (MMIO, the
   * hole, past the end). Guest-supplied addresses all go through here, `writableOffset` or `isRam`.
   */
  gpaToOffset(gpa: number, len = 1): number {
    for (const r of this.regions) {
      if (gpa >= r.gpa && len >= 0 && gpa + len <= r.gpa + r.size) return r.offset + (gpa - r.gpa);
    }
    return -1;
  }

  /** Like gpaToOffset, but -1 for ROM too: where a guest store may land. */
  writableOffset(gpa: number, len = 1): number {
    for (const r of this.regions) {
      if (gpa >= r.gpa && len >= 0 && gpa + len <= r.gpa + r.size) return r.readonly ? -1 : r.offset + (gpa - r.gpa);
    }
    return -1;
  }

  /** Load firmware into the ROM region (the host may write it; the guest cannot). */
  loadRom(data: Uint8Array): void {
    if (data.length !== this.romSize) throw new GuestMemoryError('firmware image size does not match the ROM region');
    this.bytes.set(data, this.ramSize);
  }

  isRam(gpa: number, len = 1): boolean {
    return this.gpaToOffset(gpa, len) >= 0;
  }

  private need(gpa: number, len: number): number {
    const off = this.gpaToOffset(gpa, len);
    if (off < 0) {
      throw new GuestMemoryError(`guest physical range 0x${gpa.toString(16)}+0x${len.toString(16)} is not RAM`);
    }
    return off;
  }

  /** A view (not a copy) of [gpa, gpa+len); throws when the range is not entirely RAM. */
  slice(gpa: number, len: number): Uint8Array {
    const off = this.need(gpa, len);
    return this.bytes.subarray(off, off + len);
  }

  write(gpa: number, data: Uint8Array): void {
    this.bytes.set(data, this.need(gpa, data.length));
  }

  read(gpa: number, len: number): Uint8Array {
    return this.slice(gpa, len).slice();
  }

  fill(gpa: number, len: number, value = 0): void {
    const off = this.need(gpa, len);
    this.bytes.fill(value, off, off + len);
  }

  readU8(gpa: number): number { return this.bytes[this.need(gpa, 1)]; }
  readU16(gpa: number): number { return this.view.getUint16(this.need(gpa, 2), true); }
  readU32(gpa: number): number { return this.view.getUint32(this.need(gpa, 4), true); }
  readU64(gpa: number): bigint { return this.view.getBigUint64(this.need(gpa, 8), true); }
  writeU8(gpa: number, v: number): void { this.bytes[this.need(gpa, 1)] = v; }
  writeU16(gpa: number, v: number): void { this.view.setUint16(this.need(gpa, 2), v, true); }
  writeU32(gpa: number, v: number): void { this.view.setUint32(this.need(gpa, 4), v >>> 0, true); }
  writeU64(gpa: number, v: bigint | number): void {
    this.view.setBigUint64(this.need(gpa, 8), BigInt.asUintN(64, BigInt(v)), true);
  }
}
