// A hand-moved clock for the platform tests: time only changes when the test says so, and due
// timers run in deadline order with the clock set to each deadline, as a CPU loop would see.

import { PlatformClock } from '../../src/devices/platform/clock.js';
export { rng } from '../support/xorshift.js';

export class FakeTime {
  t = 0;
  readonly clock: PlatformClock;

  constructor(tscHz?: number) {
    this.clock = new PlatformClock({ now: () => this.t, tscHz });
  }

  /** Move to absolute time `ns`, running due timers on the way. */
  runUntil(ns: number): void {
    for (let guard = 0; guard < 1_000_000; guard++) {
      const next = this.clock.nextDeadlineNs();
      if (next > ns) break;
      this.t = Math.max(this.t, next);
      this.clock.runDue(this.t);
    }
    this.t = Math.max(this.t, ns);
    this.clock.runDue(this.t);
  }

  advance(ns: number): void {
    this.runUntil(this.t + ns);
  }
}


export function pickSize(r: number): 1 | 2 | 4 {
  return ([1, 2, 4] as const)[r % 3];
}
