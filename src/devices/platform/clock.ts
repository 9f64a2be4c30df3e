// The platform's one notion of time, shared by the timers (8254 PIT, local APIC timer, later the
// HPET and RTC) and the guest TSC, so that all of them agree with each other and with the host.
//
// Time: `nowNs()` is nanoseconds of host monotonic time since the clock was created (so guest
// time starts near 0 and never goes backwards). Tests inject their own `now`.
//
// Timers: a small queue of (deadline, callback) entries. Nothing here arms a host timer: the
// owner of the run loop decides when to look. The software CPU (a) calls `runDue()` between
// instruction slices and (b) on HLT with nothing pending sleeps until `nextDeadlineNs()` (or
// until an interrupt arrives from elsewhere). For the KVM split-irqchip case, where nobody runs
// instructions in this thread, `driveWithHostTimer()` arms one unref'd host timer for the
// earliest deadline only. Every device keeps at most one entry in the queue at a time, so the
// queue is bounded by the number of timer devices.
//
// TSC: the guest TSC counts at a fixed `tscHz` (default 2.0 GHz, `DEFAULT_TSC_HZ`) derived from
// the same nanosecond clock: tscNow() = floor(nowNs * tscHz / 1e9). The frequency is fixed rather
// than the host's so that a migrated or restored guest keeps its calibration, and round so that
// the CPUID leaf 15H/16H values the CPU reports can state it exactly. A JavaScript number holds
// the TSC exactly up to 2^53 cycles (52 days at 2 GHz); `tscNowBig()` is exact forever.
// Guest writes to IA32_TSC (an offset per vCPU) are the CPU's business; `nsFromTsc()` converts a
// guest TSC value (for the TSC-deadline timer) back to clock time.

export type TimerId = number;

interface Entry {
  id: TimerId;
  atNs: number;
  fn: () => void;
}

export const DEFAULT_TSC_HZ = 2_000_000_000;

export interface PlatformClockOptions {
  /** Monotonic nanoseconds; default: host monotonic time since the clock was created. */
  now?: () => number;
  /** Guest TSC frequency in Hz; default DEFAULT_TSC_HZ (2.0 GHz). */
  tscHz?: number;
}

function hostNow(): () => number {
  const origin = process.hrtime.bigint();
  return () => Number(process.hrtime.bigint() - origin);
}

/** Most callbacks one runDue() call runs, so a misbehaving timer cannot hang the caller. */
const MAX_RUNS_PER_CALL = 10_000;

export class PlatformClock {
  readonly tscHz: number;
  private readonly now: () => number;
  /** Sorted by deadline, then by scheduling order (ids grow). */
  private queue: Entry[] = [];
  private nextId = 1;
  /** Told whenever the earliest deadline may have changed (for a host-timer driver). */
  onDeadlineChange?: () => void;

  constructor(options: PlatformClockOptions = {}) {
    this.now = options.now ?? hostNow();
    const hz = options.tscHz ?? DEFAULT_TSC_HZ;
    if (!Number.isFinite(hz) || hz <= 0) throw new RangeError(`tscHz must be positive, got ${hz}`);
    this.tscHz = hz;
  }

  nowNs(): number {
    return this.now();
  }

  /** The guest TSC now (exact below 2^53). */
  tscNow(): number {
    return this.tscFromNs(this.now());
  }

  tscNowBig(): bigint {
    const ns = BigInt(Math.floor(this.now()));
    return (ns * BigInt(Math.round(this.tscHz))) / 1_000_000_000n;
  }

  tscFromNs(ns: number): number {
    return Math.floor((ns * this.tscHz) / 1e9);
  }

  /** The clock time at which the TSC reaches `tsc` (rounded up to a whole nanosecond). */
  nsFromTsc(tsc: number | bigint): number {
    if (typeof tsc === 'bigint') {
      const hz = BigInt(Math.round(this.tscHz));
      return Number((tsc * 1_000_000_000n + hz - 1n) / hz);
    }
    return Math.ceil((tsc * 1e9) / this.tscHz);
  }

  /** Run `fn` once the clock reaches `atNs` (at the next runDue() at or after that time). */
  schedule(atNs: number, fn: () => void): TimerId {
    const id = this.nextId++;
    const at = Number.isNaN(atNs) ? Infinity : atNs;
    const entry: Entry = { id, atNs: at, fn };
    // Binary search for the first entry due strictly later (keeps FIFO order among equals).
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.queue[mid].atNs <= at) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, entry);
    if (lo === 0) this.onDeadlineChange?.();
    return id;
  }

  /** Forget a timer; unknown or already-run ids are ignored. */
  cancel(id: TimerId | undefined): void {
    if (id === undefined) return;
    const i = this.queue.findIndex((e) => e.id === id);
    if (i < 0) return;
    this.queue.splice(i, 1);
    if (i === 0) this.onDeadlineChange?.();
  }

  /** The earliest deadline, or Infinity when nothing is scheduled. */
  nextDeadlineNs(): number {
    return this.queue.length > 0 ? this.queue[0].atNs : Infinity;
  }

  /** How many timers are scheduled (each device keeps at most one). */
  get pending(): number {
    return this.queue.length;
  }

  /**
   * Run, in deadline order, every timer due at or before `nowNs` (default: now), including ones
   * that callbacks schedule for times already past. Returns how many ran.
   */
  runDue(nowNs: number = this.now()): number {
    let runs = 0;
    while (this.queue.length > 0 && this.queue[0].atNs <= nowNs && runs < MAX_RUNS_PER_CALL) {
      const e = this.queue.shift() as Entry;
      runs++;
      e.fn();
    }
    if (runs > 0) this.onDeadlineChange?.();
    return runs;
  }
}

/**
 * Keep one unref'd host timer armed for the clock's earliest deadline and run due timers when it
 * fires: for when no CPU loop in this thread calls runDue() (devices beside a KVM vCPU).
 * Returns a function that stops it.
 */
export function driveWithHostTimer(clock: PlatformClock): () => void {
  let handle: ReturnType<typeof setTimeout> | undefined;
  let armedFor = Infinity;
  let stopped = false;
  const rearm = (): void => {
    if (stopped) return;
    const next = clock.nextDeadlineNs();
    if (next === armedFor) return;
    if (handle !== undefined) clearTimeout(handle);
    handle = undefined;
    armedFor = next;
    if (next === Infinity) return;
    const ms = Math.max(0, (next - clock.nowNs()) / 1e6);
    handle = setTimeout(() => {
      handle = undefined;
      armedFor = Infinity;
      clock.runDue();
      rearm();
    }, Math.min(ms, 2 ** 31 - 1));
    handle.unref();
  };
  const previous = clock.onDeadlineChange;
  clock.onDeadlineChange = () => {
    previous?.();
    rearm();
  };
  rearm();
  return () => {
    stopped = true;
    if (handle !== undefined) clearTimeout(handle);
    clock.onDeadlineChange = previous;
  };
}
