// The differential CPU oracle (see README.md here): the same ring-3 instruction sequences run
// under --accel kvm (the hardware, the reference) and --accel soft, and every case's registers,
// RFLAGS (defined bits), exception, RIP and memory window must match.
//
// Bounded for `npm test`: seed 1, every directed family (>= 100 cases each) and 10,000 random
// sequences, in one guest image. Bigger runs: `npm run fuzz:cpu -- --seed N --count M`.
//
// The soft-CPU comparison FAILS (never skips) when the soft CPU cannot run the image or
// disagrees; set TSVM_ORACLE_SKIP_SOFT=1 to leave it out while working on something else.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kvmUnavailableReason } from '../support/tsvm-process.js';
import { familyNames, generateCases, generateByIds } from './generate.js';
import { buildImage, type OracleImage } from './image.js';
import * as L from './layout.js';
import { compareRuns, formatReport, type OracleReport } from './run.js';
import { runImage, type RawRun } from './vm-run.js';

const SEED = 1;
const RANDOM = 10_000;
const noKvm = kvmUnavailableReason();
const skipSoft = process.env.TSVM_ORACLE_SKIP_SOFT ? 'TSVM_ORACLE_SKIP_SOFT is set' : undefined;

let built: Promise<{ image: OracleImage; pool: Uint8Array; generateMs: number; buildMs: number }> | undefined;
function image() {
  built ??= (async () => {
    const t0 = performance.now();
    const gen = generateCases({ seed: SEED, random: RANDOM });
    const t1 = performance.now();
    const img = await buildImage(gen.cases, gen.pool);
    return { image: img, pool: gen.pool, generateMs: t1 - t0, buildMs: performance.now() - t1 };
  })();
  return built;
}

let kvmRun: Promise<RawRun> | undefined;
const reference = async () => {
  const { image: img } = await image();
  kvmRun ??= runImage(img, 'kvm', { timeoutMs: 120_000, name: 'oracle-kvm' });
  return kvmRun;
};

async function compare(b: RawRun): Promise<OracleReport> {
  const { image: img, pool, generateMs, buildMs } = await image();
  return compareRuns(img, await reference(), b, { seed: SEED, generateMs, buildMs, pool });
}

const reproduce = (id: string) => `npm run fuzz:cpu -- --seed ${SEED} --case '${id}'`;

test('oracle: generation is deterministic, and every directed family has at least 100 cases', () => {
  const a = generateCases({ seed: SEED, random: 50 });
  const b = generateCases({ seed: SEED, random: 50 });
  assert.deepEqual(a.cases, b.cases);
  assert.deepEqual(a.pool, b.pool);
  const counts = new Map<string, number>();
  for (const c of a.cases) counts.set(c.family, (counts.get(c.family) ?? 0) + 1);
  for (const f of familyNames()) assert.ok((counts.get(f) ?? 0) >= 100, `family ${f} has ${counts.get(f) ?? 0} cases`);
  // A case can be regenerated alone from its id (what `fuzz:cpu --case` does).
  const ids = ['adc#7', 'faults#3', 'random#17'];
  const again = generateByIds(SEED, ids).cases;
  for (const [i, id] of ids.entries()) assert.deepEqual(again[i], a.cases.find((c) => c.id === id), id);
  // Another seed gives other cases.
  assert.notDeepEqual(generateCases({ seed: SEED + 1, random: 50 }).cases, a.cases);
});

test('oracle: every snippet assembles into the image', async () => {
  const { image: img } = await image();
  assert.equal(img.cases.length, img.boundaries.length);
  assert.ok(img.memoryBytes >= img.resultsAddr + img.cases.length * L.RESULT_SIZE);
});

test('oracle/kvm: the harness is deterministic (KVM twice, byte for byte)', { skip: noKvm }, async () => {
  const { image: img } = await image();
  const again = await runImage(img, 'kvm', { timeoutMs: 120_000, name: 'oracle-kvm2' });
  const r = await compare(again);
  assert.equal(r.a.outcome, 'done', formatReport(r, { limit: 5 }));
  assert.equal(r.a.reached, img.cases.length);
  const ref = await reference();
  assert.ok(Buffer.from(ref.results).equals(Buffer.from(again.results)), formatReport(r, { limit: 10 }));
  // Timing (KVM, this machine): noted in README.md; a generous bound catches a harness that
  // started taking ring-0 paths per case.
  assert.ok(ref.wallMs < 20_000, `the KVM run took ${ref.wallMs} ms`);
});

test('oracle/kvm: a planted difference is reported field by field', { skip: noKvm }, async () => {
  const gen = generateByIds(SEED, ['adc#3', 'faults#40', 'random#5', 'cmp#0']);
  const img = await buildImage(gen.cases, gen.pool);
  const a = await runImage(img, 'kvm', { timeoutMs: 60_000 });
  const b = await runImage(img, 'kvm', { timeoutMs: 60_000 });
  const q = (i: number, off: number) => i * L.RESULT_SIZE + off;
  b.results[q(0, 8 * 2)] ^= 1; // adc#3: rdx bit 0
  b.results[q(1, L.RES.vector)] = 17; // faults#40: a different exception (#AC)
  b.results[q(2, L.RES.window + 0x210)] ^= 0xff; // random#5: a byte of the window
  b.results[q(3, L.RES.rflags)] ^= 0x01; // cmp#0: CF (defined after CMP)
  const r = compareRuns(img, a, b, { seed: SEED, generateMs: 0, buildMs: 0, pool: gen.pool });
  const text = formatReport(r, { reproduce });
  assert.equal(r.mismatches.length, 4, text);
  const fields = r.mismatches.map((m) => m.diffs.map((d) => d.field).join(','));
  assert.deepEqual(fields, ['rdx', 'exception', `mem 0x${(L.WINDOW_START + 0x210).toString(16)}`, 'RFLAGS']);
  assert.match(text, /✗ case adc#3 \[adc\]/);
  assert.match(text, /rdx +kvm 0x[0-9a-f]{16} +kvm#2 0x[0-9a-f]{16} +\(xor 0x1\)/);
  assert.match(text, /exception +kvm #\w+ +kvm#2 #AC/);
  assert.match(text, /before: /);
  assert.match(text, /RFLAGS +kvm 0x[0-9a-f]+ +kvm#2 0x[0-9a-f]+ +\(differ in CF: CF=[01] vs CF=[01]\)/);
  assert.match(text, /reproduce: npm run fuzz:cpu -- --seed 1 --case 'adc#3'/);
  assert.match(text, /by family: .*adc 1\/1/);
});

test('oracle: the soft CPU matches KVM (seed 1: every directed family + 10,000 random sequences)', { skip: noKvm ?? skipSoft }, async () => {
  const { image: img } = await image();
  await reference();
  const soft = await runImage(img, 'soft', { timeoutMs: 300_000, name: 'oracle-soft' });
  const r = await compare(soft);
  if (r.ok) return;
  const full = join(tmpdir(), `tsvm-oracle-seed${SEED}.txt`);
  writeFileSync(full, `${formatReport(r, { limit: Infinity, reproduce })}\n`);
  assert.fail(`${formatReport(r, { limit: 25, reproduce })}\n\n(full report: ${full})`);
});

test('oracle: the soft CPU with every block compiled at its first run (the JIT) matches KVM', { skip: noKvm ?? skipSoft }, async () => {
  // The run above interprets the snippets: each runs once, far below the JIT's threshold. With
  // TSVM_SOFT_JIT_HOT=1 every block is compiled (synchronously) when first reached, so the same
  // cases check the compiled code against the hardware: its flags, side exits, kept branches
  // (the jcc family's branches over a MOV and over 130 NOPs), calls and faults.
  const { image: img } = await image();
  await reference();
  const old = process.env.TSVM_SOFT_JIT_HOT;
  process.env.TSVM_SOFT_JIT_HOT = '1';
  let soft: RawRun;
  try {
    soft = await runImage(img, 'soft', { timeoutMs: 300_000, name: 'oracle-soft-jit' });
  } finally {
    if (old === undefined) delete process.env.TSVM_SOFT_JIT_HOT;
    else process.env.TSVM_SOFT_JIT_HOT = old;
  }
  const r = await compare(soft);
  if (r.ok) return;
  const full = join(tmpdir(), `tsvm-oracle-seed${SEED}-jit.txt`);
  writeFileSync(full, `${formatReport(r, { limit: Infinity, reproduce: (id) => `TSVM_SOFT_JIT_HOT=1 ${reproduce(id)}` })}\n`);
  assert.fail(`${formatReport(r, { limit: 25, reproduce: (id) => `TSVM_SOFT_JIT_HOT=1 ${reproduce(id)}` })}\n\n(full report: ${full})`);
});
