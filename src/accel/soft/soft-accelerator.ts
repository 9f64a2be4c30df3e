// The software CPU as an Accelerator. It runs in the device thread itself, so a device access is
// a plain function call; it yields to the event loop after each slice of instructions so that
// timers, the console and the API stay responsive.
import type { Accelerator, AccelStats, GuestStop } from '../accelerator.js';
import type { CpuState } from '../cpu-state.js';
import type { Bus } from '../../devices/bus.js';
import { NullIrqSink } from '../../devices/irq.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { SoftCpu } from './soft-cpu.js';

export interface SoftOptions {
  cpus: number;
  log: (line: string) => void;
}

/** Instructions per slice: long enough to amortise the yield, short enough to keep the loop lively. */
const SLICE = 200_000;

class SoftAccelerator implements Accelerator {
  readonly kind = 'soft' as const;
  // The PIC/IOAPIC/LAPIC models that deliver interrupts to the software CPU come with the next
  // milestone (docs/ARCHITECTURE.md); until then device interrupts are recorded and dropped.
  readonly irq = new NullIrqSink();
  readonly msi = { signalMsi: (_address: number, _data: number) => { this.droppedMsis++; } };
  private droppedMsis = 0;
  private stopRequested = false;
  private paused = false;
  private wake?: () => void;
  private instructions = 0;

  constructor(private readonly mem: GuestMemory, private readonly options: SoftOptions) {
    if (options.cpus !== 1) throw new Error('--accel soft runs one vCPU for now; use --cpus 1');
  }

  private cpu?: SoftCpu;

  async run(bus: Bus, boot: CpuState): Promise<GuestStop> {
    const cpu = (this.cpu = new SoftCpu({ mem: this.mem, bus }));
    cpu.setState(boot);
    for (;;) {
      if (this.stopRequested) return { reason: 'requested', message: 'stopped by the VMM', vcpuId: 0 };
      if (this.paused) {
        await new Promise<void>((r) => { this.wake = r; });
        continue;
      }
      const exit = cpu.run(SLICE);
      if (this.stopRequested) return { reason: 'requested', message: 'stopped by the VMM', vcpuId: 0 };
      switch (exit.kind) {
        case 'budget':
          this.instructions += SLICE;
          await new Promise<void>((r) => setImmediate(r));
          break;
        case 'hlt':
          return { reason: 'hlt', message: 'the guest executed HLT and no interrupt can wake it', vcpuId: 0, state: cpu.getState() };
        case 'shutdown':
          return { reason: 'shutdown', message: `the guest triple-faulted (${exit.reason})`, vcpuId: 0, state: cpu.getState() };
        case 'error':
          return { reason: 'internal-error', message: `software CPU: ${exit.message}`, vcpuId: 0, state: cpu.getState() };
      }
    }
  }

  stop(): void {
    this.stopRequested = true;
    this.cpu?.requestExit();
    this.wake?.();
  }

  pause(): void {
    this.paused = true;
    this.cpu?.requestExit();
  }

  resume(): void {
    this.paused = false;
    this.wake?.();
    this.wake = undefined;
  }

  stats(): AccelStats {
    return { exits: 0, ioExits: 0, mmioExits: 0, forwarded: 0 };
  }

  close(): void {}
}

export function createSoftAccelerator(mem: GuestMemory, options: SoftOptions): Accelerator {
  return new SoftAccelerator(mem, options);
}
