// The PIIX/ICH reset control register at port 0xCF9 (Intel 82371AB PIIX4 datasheet, "RC — Reset
// Control Register"; ICH datasheets keep the same layout). The FADT's RESET_REG points here with
// RESET_VALUE 0x06, which is also what Linux's "reboot=pci" path writes.
//
//   bit 1  SRST  system reset type (1 = hard reset)      stored, reads back
//   bit 2  RCPU  reset CPU: a write with this bit set starts the reset; it reads back 0
//   bit 3  FULL_RST (ICH) full power cycle              stored, reads back
//
// Every reset kind becomes MachineControl 'reset' (a VM has one kind of reset).
//
// Note for whoever wires the bus: 0xCF9 lies inside the PCI CONFIG_ADDRESS dword (0xCF8-0xCFB).
// On a PIIX only 32-bit accesses to 0xCF8 reach CONFIG_ADDRESS and a byte access to 0xCF9 reaches
// this register, so the PCI host bridge must claim 0xCF8 so as to forward byte accesses at
// 0xCF9 here (`pioWrite(0, 1, v)`), or the two must be claimed byte by byte.

import type { PioDevice } from '../bus.js';
import type { MachineControl } from '../../vmm/machine-control.js';
import { readLanes, writeLanes } from './byte-lanes.js';

const RC_SRST = 0x02;
const RC_RCPU = 0x04;
const RC_FULL_RST = 0x08;

export class ResetControl implements PioDevice {
  readonly name = 'reset-control';
  private value = 0;

  constructor(private readonly control: MachineControl) {}

  pioRead(offset: number, size: 1 | 2 | 4): number {
    return readLanes(size, (i) => (offset + i === 0 ? this.value : 0xff));
  }

  pioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    writeLanes(size, value, (i, b) => {
      if (offset + i !== 0) return;
      this.value = b & (RC_SRST | RC_FULL_RST);
      if (b & RC_RCPU) this.control.requestStop({ kind: 'reset' });
    });
  }

  reset(): void {
    this.value = 0;
  }
}
