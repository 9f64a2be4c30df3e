// The soft CPU's thread is the one that matters: everything the guest does waits for it. The
// process's other threads (V8's platform workers, which compile the JIT's modules to optimized code
// and run the garbage collector's concurrent phases; the JIT's compiler thread; libuv's pool) do
// work that can wait a little. On a host with few cores the kernel's scheduler gave them the vCPU
// thread's core often enough to matter: on the 2-core development VM the boot of the Debian kernel
// to /init lost ~0.5 s of its ~4.3 s to preemption (wall time minus the vCPU thread's CPU time),
// ~0.2 s once the helpers ran at nice 10 (mean of 5 interleaved boots each: 4.31 -> 3.83 s).
//
// So the soft accelerator lowers their priority (setpriority(2) on each thread id: on Linux
// niceness is per thread). Raising one's own threads' niceness needs no privilege. Linux only
// (/proc/self/task); elsewhere, or when it fails, nothing changes. TSVM_SOFT_HELPER_NICE=N sets the
// niceness (default 10; 0 leaves the threads alone).

import { readdirSync, readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

const DEFAULT_NICE = 10;

function helperNice(): number {
  const v = Number(process.env.TSVM_SOFT_HELPER_NICE ?? DEFAULT_NICE);
  return Number.isInteger(v) && v >= 0 && v <= 19 ? v : DEFAULT_NICE;
}

/** The kernel's id of the calling thread (Linux), or -1. */
export function currentThreadId(): number {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return -1;
  }
}

/** Make thread `tid` nicer (never less nice than it is). */
export function lowerThreadPriority(tid: number): void {
  const nice = helperNice();
  if (tid <= 0 || nice === 0) return;
  try {
    if (getPriority(tid) < nice) setPriority(tid, nice);
  } catch {
    // not Linux, or the thread is gone: leave it
  }
}

/** Lower the priority of every thread of this process but the calling one (the vCPU's). */
export function lowerHelperThreads(): void {
  const self = currentThreadId();
  if (self <= 0) return;
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return;
  }
  for (const t of tids) if (Number(t) !== self) lowerThreadPriority(Number(t));
}
