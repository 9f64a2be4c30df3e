// The node options `tsvm run` wants from its first instruction on. V8 takes its platform's thread
// pool size only when node starts: bin/tsvm's shebang passes it (`tsvm run` from a shell), the
// project's own launchers (npm start, benchmarks, tests) pass it on the node command line, and
// bin/tsvm restarts itself with it (execv, ~60-90 ms) only when started without it.

/**
 * One V8 platform worker: on our 2-core machine the Debian kernel's boot to /init took 4.31 s
 * with node's default pool of 4 and 3.89 s with one (6 interleaved boots each; less CPU in all,
 * 6.9 vs 6.4 s), and 2.83 vs 2.75 s in the seventh session, the restart included.
 */
/*
 * `--wasm-tiering-budget=3600000`, twice V8's default: a wasm function runs in Liftoff code twice
 * as long before its TurboFan tier-up is queued. Fewer of the JIT's block functions get tiered up,
 * which leaves the second core's time to the compiler thread. Boot to /init, 8-10 interleaved boots
 * in three rounds: 2.33 / 2.28 / 2.20 s with the default, 2.26 / 2.22 / 2.19 s with it (900,000:
 * 2.40 s; 5,000,000 and 7,200,000 about the same as 3,600,000).
 */
export const NODE_FLAGS: readonly string[] = ['--v8-pool-size=1', '--wasm-tiering-budget=3600000'];

/** Arguments for `spawn(process.execPath, ...)` that run bin/tsvm with `args` and NODE_FLAGS. */
export function tsvmNodeArgs(bin: string, args: readonly string[]): string[] {
  return [...NODE_FLAGS, bin, ...args];
}
