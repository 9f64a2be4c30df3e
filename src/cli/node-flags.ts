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
/*
 * `--no-wasm-stack-checks`: V8 compiles a stack-limit check into the entry of every wasm function
 * and every loop's back edge. The JIT's blocks are small functions entered ~30 M times on the way
 * to Linux's /init (most by tail calls, each a function entry), and its loops check at every pass.
 * Boot to /init, interleaved boots: 2.164 vs 2.095 s (6 each) and 2.415 vs 2.295 s (10 each).
 * What the checks are for does not arise here:
 * - a stack overflow: the wasm this process runs cannot recurse without bound. The core's call
 *   graph has no cycle but readLinSlow/writeLinSlow splitting a page-crossing access into
 *   single bytes (one level; test/soft/core-call-graph.test.ts checks this), blocks chain by tail
 *   calls (a flat stack), the core calls a block only from jitTry, which blocks do not call, and
 *   the boot decompressors' wasm (boot/decompress/lz4-wasm.ts, xxh64.ts) makes no calls at all.
 * - interrupt requests delivered through the stack limit (e.g. `worker.terminate()`): no wasm
 *   runs without returning to JavaScript for long; the run loop returns after every slice of
 *   100,000 instructions and a block's loop stops when its budget ends. The compiler thread,
 *   which is terminated, compiles wasm but runs none.
 * - a shared memory growing in another thread: guest RAM's memory never grows (soft-memory.ts).
 */
/*
 * `--interrupt-budget=270336`, four times V8's default: JavaScript functions run longer in V8's
 * interpreter before they are optimized, so V8's one worker thread optimizes fewer of them and
 * has more of the second core for the guest's wasm tier-ups (and the JIT's compiler thread, which
 * warms up its own compiler before it is needed: jit/warm-up.ts). The few functions that run all
 * the time are optimized anyway. Boot to /init, bench:ab-boot, 10 rounds in each order against the
 * default: 0.952x and 0.950x (the CPU's thread 0.957x, 0.962x); 16 times the default measured the
 * same as 4 times (1.000x, 0.996x).
 */
/*
 * `--no-wasm-lazy-compilation`: V8 compiles every function of a module with Liftoff when the
 * module is made instead of at its first call. The JIT's modules are made on its compiler thread,
 * so their Liftoff compile (~3.3 µs per guest instruction, bench:jit-compile) moved off the CPU's
 * thread, where lazy compilation ran it, to the second core (which also compiles the siblings
 * that never run). Boot to /init, bench:ab-boot against the lazy default, four runs of 8-16
 * rounds in both orders: 0.977x, 0.967x, 1.030x, 0.924x (the host's load moved ~10 % between
 * rounds then); ~-2.5 % overall. (Sessions before the interrupt budget above measured it
 * slower: the second core had less room then.) The core's module compiles eagerly in ~4 ms.
 */
export const NODE_FLAGS: readonly string[] = [
  '--v8-pool-size=1', '--wasm-tiering-budget=3600000', '--no-wasm-stack-checks', '--interrupt-budget=270336',
  '--no-wasm-lazy-compilation',
];

/** Arguments for `spawn(process.execPath, ...)` that run bin/tsvm with `args` and NODE_FLAGS. */
export function tsvmNodeArgs(bin: string, args: readonly string[]): string[] {
  return [...NODE_FLAGS, bin, ...args];
}
