// The one bus that every guest I/O goes through, whichever accelerator produced it: port I/O
// (a 64 KiB space) and MMIO (guest-physical addresses that are not RAM). A device claims one or
// more ranges; an access is routed to the device whose range contains it, with the offset into
// that range. Accesses nobody claims behave as on a PC: reads return all ones, writes are dropped.
//
// Values are plain numbers for widths up to 4 bytes; 8-byte MMIO is split into two 4-byte
// accesses (low half first), because guests mostly use 32-bit MMIO and numbers keep the hot
// path free of BigInt.

export interface PioDevice {
  /** Short name used in logs and register dumps. */
  readonly name: string;
  pioRead(offset: number, size: 1 | 2 | 4): number;
  pioWrite(offset: number, size: 1 | 2 | 4, value: number): void;
}

export interface MmioDevice {
  readonly name: string;
  mmioRead(offset: number, size: 1 | 2 | 4): number;
  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void;
}

interface Claim<D> {
  readonly start: number;
  readonly length: number;
  readonly device: D;
}

export class BusConflictError extends Error {}

const ALL_ONES = [0, 0xff, 0xffff, 0, 0xffffffff] as const;

/** Sorted, non-overlapping ranges with a binary search, shared by the two address spaces. */
class RangeMap<D> {
  private claims: Claim<D>[] = [];

  add(start: number, length: number, device: D, describe: (d: D) => string): void {
    if (length <= 0) throw new BusConflictError(`empty range for ${describe(device)}`);
    for (const c of this.claims) {
      if (start < c.start + c.length && c.start < start + length) {
        throw new BusConflictError(
          `${describe(device)} at 0x${start.toString(16)} overlaps ${describe(c.device)} at 0x${c.start.toString(16)}`,
        );
      }
    }
    this.claims.push({ start, length, device });
    this.claims.sort((a, b) => a.start - b.start);
  }

  remove(device: D): void {
    this.claims = this.claims.filter((c) => c.device !== device);
  }

  find(addr: number): Claim<D> | undefined {
    let lo = 0;
    let hi = this.claims.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = this.claims[mid];
      if (addr < c.start) hi = mid - 1;
      else if (addr >= c.start + c.length) lo = mid + 1;
      else return c;
    }
    return undefined;
  }

  list(): readonly Claim<D>[] {
    return this.claims;
  }
}

export interface BusStats {
  pioReads: number;
  pioWrites: number;
  mmioReads: number;
  mmioWrites: number;
  unclaimed: number;
}

export class Bus {
  private readonly pio = new RangeMap<PioDevice>();
  private readonly mmio = new RangeMap<MmioDevice>();
  readonly stats: BusStats = { pioReads: 0, pioWrites: 0, mmioReads: 0, mmioWrites: 0, unclaimed: 0 };
  /** Called for accesses nobody claims (for tracing); must not throw. */
  onUnclaimed?: (space: 'pio' | 'mmio', addr: number, size: number, write: boolean, value: number) => void;

  addPio(port: number, length: number, device: PioDevice): void {
    if (port < 0 || port + length > 0x10000) throw new BusConflictError(`port range of ${device.name} is outside 0-0xffff`);
    this.pio.add(port, length, device, (d) => d.name);
  }

  addMmio(addr: number, length: number, device: MmioDevice): void {
    this.mmio.add(addr, length, device, (d) => d.name);
  }

  removePio(device: PioDevice): void { this.pio.remove(device); }
  removeMmio(device: MmioDevice): void { this.mmio.remove(device); }

  pioRead(port: number, size: 1 | 2 | 4): number {
    this.stats.pioReads++;
    const c = this.pio.find(port);
    if (!c) {
      this.stats.unclaimed++;
      this.onUnclaimed?.('pio', port, size, false, 0);
      return ALL_ONES[size];
    }
    return c.device.pioRead(port - c.start, size) >>> 0;
  }

  pioWrite(port: number, size: 1 | 2 | 4, value: number): void {
    this.stats.pioWrites++;
    const c = this.pio.find(port);
    if (!c) {
      this.stats.unclaimed++;
      this.onUnclaimed?.('pio', port, size, true, value);
      return;
    }
    c.device.pioWrite(port - c.start, size, value >>> 0);
  }

  /** An MMIO read of 1, 2 or 4 bytes (8-byte accesses: mmioRead64, as two halves). */
  mmioRead(addr: number, size: 1 | 2 | 4): number {
    this.stats.mmioReads++;
    const c = this.mmio.find(addr);
    if (!c) {
      this.stats.unclaimed++;
      this.onUnclaimed?.('mmio', addr, size, false, 0);
      return ALL_ONES[size];
    }
    return c.device.mmioRead(addr - c.start, size) >>> 0;
  }

  mmioRead64(addr: number): [number, number] {
    return [this.mmioRead(addr, 4), this.mmioRead(addr + 4, 4)];
  }

  mmioWrite(addr: number, size: 1 | 2 | 4, value: number): void {
    this.stats.mmioWrites++;
    const c = this.mmio.find(addr);
    if (!c) {
      this.stats.unclaimed++;
      this.onUnclaimed?.('mmio', addr, size, true, value);
      return;
    }
    c.device.mmioWrite(addr - c.start, size, value >>> 0);
  }

  mmioWrite64(addr: number, low: number, high: number): void {
    this.mmioWrite(addr, 4, low);
    this.mmioWrite(addr + 4, 4, high);
  }

  /** Claimed ranges, for `info`-style dumps and tests. */
  describe(): { space: 'pio' | 'mmio'; start: number; length: number; name: string }[] {
    return [
      ...this.pio.list().map((c) => ({ space: 'pio' as const, start: c.start, length: c.length, name: c.device.name })),
      ...this.mmio.list().map((c) => ({ space: 'mmio' as const, start: c.start, length: c.length, name: c.device.name })),
    ];
  }
}
