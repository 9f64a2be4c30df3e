// xorshift32 (Marsaglia, "Xorshift RNGs", 2003: shifts 13, 17, 5): the deterministic generator
// the tests' random workloads and hostile-input loops share.

/** A generator of 32-bit values from a non-zero starting `state`. */
export function xorshift32(state: number): () => number {
  let x = state >>> 0;
  if (x === 0) throw new Error('xorshift32 needs a non-zero state');
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** xorshift32 seeded by `seed` (0 stands for 1). */
export function rng(seed: number): () => number {
  return xorshift32(seed >>> 0 || 1);
}
