// kvm-unit-tests' "pc-testdev" (QEMU hw/misc/pc-testdev.c, ISA device "pc-testdev"): scratch
// registers and an interrupt trigger that the x86 unit tests use to check port I/O and MMIO
// emulation at every width, and interrupt routing.
//
//   ports 0xE0-0xE3  a 32-bit scratch register, little-endian byte lanes: an access of width w
//                    at 0xE0+k reads/writes bytes k..k+w-1 of it (lanes past byte 3 are dropped
//                    and read 0). Used by the string-I/O and port-width tests.
//   ports 0xE4-0xE7  "flush page": QEMU takes a guest-physical address and re-protects that
//                    host page to force KVM to drop its mappings. Nothing to flush here (guest
//                    RAM is one shared buffer); writes are accepted and ignored, reads give 0.
//   port  0xE8       the same scratch register, reached through byte-wide accesses (QEMU maps
//                    0xE8-0xEB and splits wider accesses into bytes; the outcome is the same
//                    lanes as at 0xE0). Only 0xE8 itself is claimed, so that 0xE9 stays free for
//                    a Bochs/QEMU debug console; an access starting at 0xE8 still reaches every
//                    lane, since the bus routes by the first port.
//   ports 0x2000+n   n < 24: writing a non-zero value raises GSI n, zero lowers it; reads 0.
//   MMIO 0xFF000000  64 KiB of scratch memory that reads back what was written, at any width.
//
// All guest offsets are bounded by the ranges above; nothing here grows.

import type { Bus, MmioDevice, PioDevice } from '../bus.js';
import type { IrqSink } from '../irq.js';
import { TESTDEV_IRQ_PORT, TESTDEV_MMIO_BASE, TESTDEV_MMIO_SIZE, TESTDEV_PORT } from '../../vmm/platform-layout.js';
import { readLanes, writeLanes } from './byte-lanes.js';

/** Ports 0xE0-0xE8: scratch, flush page, byte-wide scratch. */
export const TESTDEV_PORT_LENGTH = 9;
/** Ports 0x2000-0x2017: one per GSI. */
export const TESTDEV_IRQ_LINES = 24;

const OFF_FLUSH = 4;
const OFF_BYTE_SCRATCH = 8;

export class PcTestdev implements PioDevice, MmioDevice {
  readonly name = 'pc-testdev';
  /** Ports 0xE0-0xE8 (this object; named for symmetry with `irqPorts`). */
  readonly ports: PioDevice = this;
  /** Ports 0x2000-0x2017. */
  readonly irqPorts: PioDevice;
  /** The 64 KiB scratch window (this object). */
  readonly mmio: MmioDevice = this;
  private scratch = 0; // the 32-bit ioport_data
  private readonly iomem = new Uint8Array(TESTDEV_MMIO_SIZE);
  /** Pages named by flush writes (kept as a count, for tests). */
  flushes = 0;

  constructor(private readonly irqSink: IrqSink) {
    this.irqPorts = {
      name: 'pc-testdev-irq',
      pioRead: () => 0,
      pioWrite: (offset, _size, value) => {
        if (Number.isInteger(offset) && offset >= 0 && offset < TESTDEV_IRQ_LINES) this.irqSink.setIrq(offset, value !== 0);
      },
    };
  }

  /** Claim 0xE0-0xE8, 0x2000-0x2017 and the 64 KiB MMIO window. */
  attach(bus: Bus): void {
    bus.addPio(TESTDEV_PORT, TESTDEV_PORT_LENGTH, this);
    bus.addPio(TESTDEV_IRQ_PORT, TESTDEV_IRQ_LINES, this.irqPorts);
    bus.addMmio(TESTDEV_MMIO_BASE, TESTDEV_MMIO_SIZE, this);
  }

  pioRead(offset: number, size: 1 | 2 | 4): number {
    if (offset >= OFF_FLUSH && offset < OFF_BYTE_SCRATCH) return 0;
    if (offset < 0 || offset >= OFF_BYTE_SCRATCH + 4) return 0;
    const first = offset & 3;
    return readLanes(size, (i) => (first + i < 4 ? (this.scratch >>> (8 * (first + i))) & 0xff : 0));
  }

  pioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset >= OFF_FLUSH && offset < OFF_BYTE_SCRATCH) {
      this.flushes++;
      return;
    }
    if (offset < 0 || offset >= OFF_BYTE_SCRATCH + 4) return;
    const first = offset & 3;
    writeLanes(size, value, (i, b) => {
      const lane = first + i;
      if (lane >= 4) return;
      this.scratch = ((this.scratch & ~(0xff << (8 * lane))) | (b << (8 * lane))) >>> 0;
    });
  }

  mmioRead(offset: number, size: 1 | 2 | 4): number {
    return readLanes(size, (i) => {
      const a = offset + i;
      return a >= 0 && a < TESTDEV_MMIO_SIZE ? this.iomem[a] : 0;
    });
  }

  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    writeLanes(size, value, (i, b) => {
      const a = offset + i;
      if (a >= 0 && a < TESTDEV_MMIO_SIZE) this.iomem[a] = b;
    });
  }
}
