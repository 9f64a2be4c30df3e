// Case generation, seeded and deterministic: the directed families (families.ts) and random
// sequences (random.ts). The same seed always gives the same cases, pool and image.

import type { OracleCase } from './case.js';
import { Gen, Rng } from './builder.js';
import { FAMILIES } from './families.js';
import { makePool } from './image.js';
import { randomCase } from './random.js';

export interface GenerateOptions {
  seed: number;
  /** Include the directed families (all of them, or those whose name is listed). */
  directed?: boolean | string[];
  /** Number of random sequences. */
  random: number;
  /** Index of the first random sequence (so that chunks of a big run get different sequences). */
  randomStart?: number;
}

export interface Generated {
  cases: OracleCase[];
  pool: Uint8Array;
  seed: number;
}

export function familyNames(): string[] {
  return FAMILIES.map((f) => f.name);
}

export function generateCases(opts: GenerateOptions): Generated {
  const pool = makePool(opts.seed);
  const cases: OracleCase[] = [];
  const want = opts.directed ?? true;
  if (want) {
    for (const [i, f] of FAMILIES.entries()) {
      if (Array.isArray(want) && !want.includes(f.name)) continue;
      // Each family gets its own stream, so adding a family does not change the others.
      const g = new Gen(new Rng((opts.seed * 0x9e3779b1 + i * 0x85ebca77) >>> 0), pool);
      f.generate(g).forEach((c, n) => cases.push({ ...c, id: `${f.name}#${n}` }));
    }
  }
  const start = opts.randomStart ?? 0;
  for (let k = start; k < start + opts.random; k++) {
    // One stream per random sequence: sequence k is the same whatever the chunking.
    const g = new Gen(new Rng((opts.seed ^ Math.imul(k + 1, 0x2545f491)) >>> 0), pool);
    cases.push({ ...randomCase(g, k), id: `random#${k}` });
  }
  return { cases, pool, seed: opts.seed };
}

/** Generates just the cases named by their ids (see OracleCase.id), in the order given. */
export function generateByIds(seed: number, ids: string[]): Generated {
  const pool = makePool(seed);
  const cases = ids.map((id) => {
    const m = /^(.*)#(\d+)$/.exec(id);
    if (!m) throw new Error(`"${id}" is not a case id (family#n or random#k)`);
    const [, family, n] = m;
    const found = family === 'random'
      ? generateCases({ seed, directed: false, random: 1, randomStart: Number(n) }).cases[0]
      : generateCases({ seed, directed: [family], random: 0 }).cases.find((c) => c.id === id);
    if (!found) throw new Error(`no case ${id} for seed ${seed} (families: ${familyNames().join(', ')})`);
    return found;
  });
  return { cases, pool, seed };
}
