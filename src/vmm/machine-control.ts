// What a device may ask of the machine as a whole: power off, reset, exit with a test status.
// The VMM implements it; device models only see this interface (so they can be tested alone).

export type StopRequest =
  | { kind: 'poweroff' } // ACPI S5, a clean shutdown: process exit code 0
  | { kind: 'reset' } // keyboard-controller reset, ACPI reset register, triple fault with --no-reboot off
  | { kind: 'debug-exit'; code: number } // isa-debug-exit: process exit code (value << 1) | 1
  | { kind: 'error'; message: string }; // the VMM gives up on this guest: exit code 1

export interface MachineControl {
  requestStop(req: StopRequest): void;
}

export class RecordingMachineControl implements MachineControl {
  readonly requests: StopRequest[] = [];
  requestStop(req: StopRequest): void { this.requests.push(req); }
}
