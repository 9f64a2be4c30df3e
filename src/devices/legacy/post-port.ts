// Port 0x80, the BIOS POST-code port. Operating systems write to it only as an I/O delay
// (Linux's outb_p/inb_p "slow down" after each port access on old hardware), so writes are
// accepted and dropped (the last value is kept for debugging, as a POST card would show it).
// Reads return all ones of the access width, like an unclaimed ISA port.
//
// This is the hottest pointless exit a PC guest makes; a KVM vCPU thread may answer it without
// asking the device thread at all (see the design notes), with the same behaviour as here.

import type { PioDevice } from '../bus.js';
import { allOnes } from './byte-lanes.js';

export class PostPort implements PioDevice {
  readonly name = 'post';
  /** The last byte written (a "POST code"). */
  lastCode = 0;
  writes = 0;

  pioRead(_offset: number, size: 1 | 2 | 4): number {
    return allOnes(size);
  }

  pioWrite(offset: number, _size: 1 | 2 | 4, value: number): void {
    if (offset === 0) this.lastCode = value & 0xff;
    this.writes++;
  }
}
