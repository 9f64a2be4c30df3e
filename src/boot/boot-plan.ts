// What a boot loader hands to the VMM: the state vCPU 0 starts in (the others wait for INIT/SIPI
// or, for firmware, start in the same reset state) and a line for the log.
import type { CpuState } from '../accel/cpu-state.js';

export interface BootPlan {
  cpu: CpuState;
  /** e.g. "Linux 6.1.0 bzImage (LZ4 payload decompressed on the host), 64-bit entry at 0x1000200" */
  summary: string;
}

/** A problem with the user's boot inputs; its message is shown as is, so it names the file and the fix. */
export class BootError extends Error {}
