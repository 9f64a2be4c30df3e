// A coarse profile of where the guest spends the host's time under the software CPU, for
// performance work: TSVM_SOFT_GUEST_PROFILE=FILE makes the soft accelerator charge the wall time
// of each run slice (~20,000 guest instructions) to the RIP the slice ended at, and write
// {"<rip hex>": milliseconds, ...} to FILE when the process exits. `node
// dist/scripts/guest-profile.js FILE KALLSYMS` turns it into a per-function table (the guest's
// /proc/kallsyms; Debian ships no real System.map). docs/soft-cpu-strategy.md shows a run.
import { writeFileSync } from 'node:fs';

export class GuestProfile {
  private readonly ms = new Map<bigint, number>();

  private constructor(private readonly path: string) {
    process.once('exit', () => this.write());
  }

  /** The profile the environment asks for, or undefined (the usual case: no cost at all). */
  static fromEnv(): GuestProfile | undefined {
    const path = process.env.TSVM_SOFT_GUEST_PROFILE;
    return path ? new GuestProfile(path) : undefined;
  }

  charge(rip: bigint, ms: number): void {
    this.ms.set(rip, (this.ms.get(rip) ?? 0) + ms);
  }

  private write(): void {
    const out: Record<string, number> = {};
    for (const [rip, ms] of [...this.ms].sort((a, b) => b[1] - a[1])) out[rip.toString(16)] = Math.round(ms * 1000) / 1000;
    writeFileSync(this.path, JSON.stringify(out));
  }
}
