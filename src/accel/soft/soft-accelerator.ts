// The software CPU as an Accelerator. It runs in the device thread itself, so a device access is
// a plain function call. Around it sits the platform KVM would otherwise provide in the kernel
// (src/devices/platform: PIC, IOAPIC, local APIC, PIT, one clock); between short slices of guest
// instructions the loop runs the timers that are due, and it yields to the event loop every few
// milliseconds so host I/O, the console and the API stay responsive. HLT with interrupts enabled
// sleeps the thread until the next timer deadline or a device interrupt: an idle guest costs
// (almost) no host CPU.
import type { Accelerator, AccelStats, GuestStop } from '../accelerator.js';
import type { CpuState } from '../cpu-state.js';
import type { Bus } from '../../devices/bus.js';
import { PlatformClock } from '../../devices/platform/clock.js';
import { createPlatformInterrupts, type PlatformInterrupts } from '../../devices/platform/platform.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { SoftCpu } from './soft-cpu.js';
import { GuestProfile } from './guest-profile.js';
import { lowerHelperThreads } from './helper-threads.js';
import { dropPrestartedCompilerThread, jitWanted, prestartCompilerThread } from './jit/jit.js';
import { wasmMemoryOf } from './soft-memory.js';

export interface SoftOptions {
  cpus: number;
  log: (line: string) => void;
}

/** Guest instructions per slice: between slices due timers run and interrupts are checked (~0.5 ms). */
const SLICE = 20_000;
/** How long the CPU may run before yielding to the event loop. */
const YIELD_MS = 4;
/**
 * ... while the JIT has modules compiling on V8's threads in its `async` mode: they are installed
 * only when the event loop runs, and their blocks are interpreted until then (measured: boot to
 * Linux's /init 5.2-5.7 s with 4 ms, 4.7-4.8 s with 1 ms). The compiler thread's modules (the
 * default) are installed between run slices without the event loop (SoftJit.poll).
 */
const YIELD_COMPILING_MS = 1;
/** The guest's TSC runs at 1 GHz: one tick per nanosecond of the platform clock. */
const TSC_HZ = 1_000_000_000;
const RFLAGS_IF = 0x200n;
/** Sleeps shorter than this poll the clock instead of arming a (millisecond-granular) host timer. */
const SHORT_SLEEP_MS = 2;

class SoftAccelerator implements Accelerator {
  readonly kind = 'soft' as const;
  readonly platform: PlatformInterrupts;
  readonly irq;
  readonly msi;
  private stopRequested = false;
  private paused = false;
  private wake?: () => void;
  private cpu?: SoftCpu;
  private counters = { slices: 0, halts: 0, interrupts: 0 };

  constructor(private readonly mem: GuestMemory, private readonly options: SoftOptions) {
    if (options.cpus !== 1) throw new Error('--accel soft runs one vCPU for now; use --cpus 1');
    const clock = new PlatformClock({ tscHz: TSC_HZ });
    this.platform = createPlatformInterrupts({ cpus: options.cpus, clock });
    this.irq = this.platform.router;
    this.msi = { signalMsi: (address: number, data: number) => this.platform.apicBus.deliverMsi(address, data) };
    // A device or timer made an interrupt pending: end a HLT sleep now.
    this.platform.onWake = () => this.wakeUp();
    // The JIT's compiler thread starts now, while the VMM loads the kernel (jit.ts); not when
    // an environment variable asks for compiling on this thread or for no JIT.
    const memory = wasmMemoryOf(mem);
    const env = process.env;
    if (memory && jitWanted() && env.TSVM_SOFT_JIT_THREAD !== '0' && env.TSVM_SOFT_JIT_SYNC !== '1') prestartCompilerThread(memory);
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async run(bus: Bus, boot: CpuState): Promise<GuestStop> {
    const platform = this.platform;
    const clock = platform.clock;
    platform.attach(bus);
    platform.currentCpu = 0;
    const lapic = platform.lapics[0];
    const cpu = (this.cpu = new SoftCpu({
      mem: this.mem, bus, nowNs: () => clock.nowNs(), apic: true,
      tscDeadline: {
        read: () => lapic.readTscDeadline(),
        write: (value, tscOffset) => { lapic.tscOffset = tscOffset; lapic.writeTscDeadline(value); },
      },
    }));
    cpu.interruptSource = {
      pending: () => lapic.hasInterrupt(),
      acknowledge: () => {
        this.counters.interrupts++;
        return lapic.acknowledge();
      },
    };
    cpu.setState(boot);
    lowerHelperThreads(); // this thread runs the guest; the others can wait (helper-threads.ts)
    const stopped = (): GuestStop => ({ reason: 'requested', message: 'stopped by the VMM', vcpuId: 0 });
    let sliceStart = performance.now();
    const profile = GuestProfile.fromEnv();
    for (;;) {
      if (this.stopRequested) return stopped();
      if (this.paused) {
        await new Promise<void>((r) => { this.wake = r; });
        sliceStart = performance.now();
        continue;
      }
      clock.runDue();
      const t0 = profile ? performance.now() : 0;
      const exit = cpu.run(SLICE, false); // a time slice: it may end before a long compiled block
      if (profile) profile.charge(cpu.getState().regs.rip, performance.now() - t0);
      this.counters.slices++;
      if (this.stopRequested) return stopped();
      switch (exit.kind) {
        case 'budget':
          if (performance.now() - sliceStart >= (cpu.jit?.waitsForEventLoop() ? YIELD_COMPILING_MS : YIELD_MS)) {
            await new Promise<void>((r) => setImmediate(r));
            sliceStart = performance.now();
          }
          break;
        case 'hlt': {
          clock.runDue();
          if (lapic.hasInterrupt()) break; // the next run delivers it and leaves the halt
          const ifSet = (cpu.getState().regs.rflags & RFLAGS_IF) !== 0n;
          const deadline = clock.nextDeadlineNs();
          if (!ifSet || deadline === Infinity) {
            // Nothing can ever wake it (no timer armed, interrupts off): as KVM reports without an irqchip.
            if (!ifSet) {
              return { reason: 'hlt', message: 'the guest executed HLT with interrupts disabled; nothing can wake it', vcpuId: 0, state: cpu.getState() };
            }
          }
          this.counters.halts++;
          await this.sleepUntil(deadline, clock);
          sliceStart = performance.now();
          break;
        }
        case 'shutdown':
          return { reason: 'shutdown', message: `the guest triple-faulted (${exit.reason})`, vcpuId: 0, state: cpu.getState() };
        case 'error':
          return { reason: 'internal-error', message: `software CPU: ${exit.message}`, vcpuId: 0, state: cpu.getState() };
      }
    }
  }

  /** Sleeps until the platform clock reaches `deadlineNs` (Infinity: until woken) or a wake-up. */
  private sleepUntil(deadlineNs: number, clock: PlatformClock): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        if (timer) clearTimeout(timer);
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      this.wake = done;
      if (deadlineNs === Infinity) return;
      const ms = (deadlineNs - clock.nowNs()) / 1e6;
      if (ms >= SHORT_SLEEP_MS) {
        timer = setTimeout(done, ms);
        return;
      }
      // Node's timers have millisecond granularity: a 100 µs APIC one-shot would sleep 1 ms or
      // more. Short waits poll the clock between event-loop turns instead (busy, but brief).
      const poll = () => {
        if (this.wake !== done) return;
        if (clock.nowNs() >= deadlineNs) done();
        else setImmediate(poll);
      };
      setImmediate(poll);
    });
  }

  stop(): void {
    this.stopRequested = true;
    this.cpu?.requestExit();
    this.wakeUp();
  }

  pause(): void {
    this.paused = true;
    this.cpu?.requestExit();
  }

  resume(): void {
    this.paused = false;
    this.wakeUp();
  }

  stats(): AccelStats {
    return { exits: 0, ioExits: 0, mmioExits: 0, forwarded: 0 };
  }

  close(): void {
    this.platform.reset();
    this.cpu?.close();
    const memory = wasmMemoryOf(this.mem);
    if (memory) dropPrestartedCompilerThread(memory); // the VM never ran
  }
}

export function createSoftAccelerator(mem: GuestMemory, options: SoftOptions): Accelerator {
  return new SoftAccelerator(mem, options);
}
