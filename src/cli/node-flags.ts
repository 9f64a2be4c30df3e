// The node options `tsvm run` wants from its first instruction on. V8 takes its platform's thread
// pool size only when node starts: bin/tsvm's shebang passes it (`tsvm run` from a shell), the
// project's own launchers (npm start, benchmarks, tests) pass it on the node command line, and
// bin/tsvm restarts itself with it (execv, ~60-90 ms) only when started without it.

/**
 * One V8 platform worker: on our 2-core machine the Debian kernel's boot to /init took 4.31 s
 * with node's default pool of 4 and 3.89 s with one (6 interleaved boots each; less CPU in all,
 * 6.9 vs 6.4 s), and 2.83 vs 2.75 s in the seventh session, the restart included.
 */
export const NODE_FLAGS: readonly string[] = ['--v8-pool-size=1'];

/** Arguments for `spawn(process.execPath, ...)` that run bin/tsvm with `args` and NODE_FLAGS. */
export function tsvmNodeArgs(bin: string, args: readonly string[]): string[] {
  return [...NODE_FLAGS, bin, ...args];
}
