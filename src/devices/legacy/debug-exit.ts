// QEMU's isa-debug-exit device, so test guests (kvm-unit-tests, OS test harnesses) can end the
// VM with a status: a write of value v to any of its ports, at any width, stops the machine with
// MachineControl { kind: 'debug-exit', code: v }, which the VMM turns into process exit code
// (v << 1) | 1 (so a guest can never make it look like a clean 0 exit). QEMU registers it at
// iobase 0xF4 with iosize 4 when asked to ("-device isa-debug-exit,iobase=0xf4,iosize=0x04");
// claim DEBUG_EXIT_PORT with length 4 to match.
//
// Reads return 0 at every width, as QEMU's does (its read handler returns 0, and a read of 0 is
// the only way a guest can tell the device is there, since an empty port reads all ones).
//
// `code` is the value as written (a byte write gives 0-0xFF, a dword write up to 0xFFFFFFFF);
// truncating it to what a process exit status can carry is the VMM's business.

import type { PioDevice } from '../bus.js';
import type { MachineControl } from '../../vmm/machine-control.js';

export const DEBUG_EXIT_LENGTH = 4;

export class DebugExit implements PioDevice {
  readonly name = 'debug-exit';

  constructor(private readonly control: MachineControl) {}

  pioRead(_offset: number, _size: 1 | 2 | 4): number {
    return 0;
  }

  pioWrite(_offset: number, size: 1 | 2 | 4, value: number): void {
    const mask = size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
    this.control.requestStop({ kind: 'debug-exit', code: (value & mask) >>> 0 });
  }
}
