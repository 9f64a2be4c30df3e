// Port 0x61, "system control port B" of the PC/AT (and of the PIIX/ICH: NMI status and control
// register), as far as software still uses it:
//   bit 0  timer 2 GATE (read/write)            bit 1  speaker data enable (read/write)
//   bit 2  parity check enable (read/write)     bit 3  I/O channel check enable (read/write)
//   bit 4  refresh cycle toggle (read only)     bit 5  timer 2 OUT (read only)
//   bit 6  I/O channel check (read only, 0)     bit 7  parity error (read only, 0)
// Bit 4 changes with every DRAM refresh request, every 15.085 us on the AT (counter 1 in mode 2
// with a count of 18); later chipsets keep the toggle. It is computed from the platform clock.
// Linux's pit_calibrate_tsc() sets bit 0, programs counter 2 in mode 0 and polls bit 5.

import type { PioDevice } from '../bus.js';
import type { PlatformClock } from './clock.js';
import type { Pit8254 } from './pit8254.js';

export const SYSTEM_CONTROL_PORT_B = 0x61;
/** Half the period of the refresh toggle (bit 4), in nanoseconds. */
export const REFRESH_TOGGLE_NS = 15_085;

const WRITABLE = 0x0f;

export class SystemControlPortB implements PioDevice {
  readonly name = 'port61';
  private bits = 0;

  constructor(private readonly pit: Pit8254, private readonly clock: PlatformClock) {}

  reset(): void {
    this.bits = 0;
    this.pit.setGate2(false);
  }

  pioRead(offset: number, size: 1 | 2 | 4): number {
    let v = 0;
    const n = size === 2 || size === 4 ? size : 1;
    for (let k = 0; k < n; k++) v |= (offset + k === 0 ? this.readByte() : 0xff) << (8 * k);
    return v >>> 0;
  }

  private readByte(): number {
    let v = this.bits & WRITABLE;
    if (Math.floor(this.clock.nowNs() / REFRESH_TOGGLE_NS) & 1) v |= 0x10;
    if (this.pit.out2()) v |= 0x20;
    return v;
  }

  pioWrite(offset: number, _size: 1 | 2 | 4, value: number): void {
    if (offset !== 0) return;
    this.bits = value & WRITABLE;
    this.pit.setGate2((value & 1) !== 0);
  }

  /** The speaker is driven (gate and data enable both on): for a future audio backend. */
  get speakerOn(): boolean {
    return (this.bits & 3) === 3;
  }
}
