// `npm run fuzz:cpu -- --seed N --count M`: the differential CPU oracle (test/oracle) at scale.
// Runs M random instruction sequences (plus the directed families, once) in chunks of --chunk
// cases per guest run, under --accel kvm (the reference) and --accel soft, compares every case,
// prints progress on stderr and a summary with the mismatches on stdout. Exit status: 0 when
// everything matched, 1 on mismatches or a failed run, 2 for bad arguments.
//
//   --seed N          seed (default: time-based, printed)
//   --count M         random sequences (default 100000)
//   --chunk K         cases per guest run (default 20000)
//   --no-directed     only random sequences
//   --families a,b    only these directed families (see --list)
//   --case ID[,ID]    re-run single cases by id (printed with every mismatch: "adc#12", "random#345")
//   --against kvm     compare KVM with itself (checks the harness; default: soft)
//   --limit L         mismatches shown in full (default 40); --report FILE writes all of them
//   --timeout S       per guest run and side (default 600)
//   --list            list the directed families and exit

import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { familyNames } from '../test/oracle/generate.js';
import { type Mismatch, type OracleOptions, type OracleReport, formatMismatch, distinctFirst, formatReport, prepareOracle, runPrepared, tally } from '../test/oracle/run.js';
import type { OracleAccel } from '../test/oracle/vm-run.js';

function usage(msg?: string): never {
  if (msg) process.stderr.write(`fuzz-cpu: ${msg}\n`);
  process.stderr.write('usage: npm run fuzz:cpu -- [--seed N] [--count M] [--chunk K] [--no-directed] [--families a,b] [--case ID,...] [--against kvm|soft] [--limit L] [--report FILE] [--timeout S] [--list]\n');
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      seed: { type: 'string' },
      count: { type: 'string', default: '100000' },
      chunk: { type: 'string', default: '20000' },
      'no-directed': { type: 'boolean', default: false },
      families: { type: 'string' },
      case: { type: 'string' },
      against: { type: 'string', default: 'soft' },
      limit: { type: 'string', default: '40' },
      report: { type: 'string' },
      timeout: { type: 'string', default: '600' },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }).values;
} catch (e) {
  usage((e as Error).message);
}
if (args.help) usage();
if (args.list) {
  process.stdout.write(`${familyNames().join('\n')}\n`);
  process.exit(0);
}
const int = (name: string, v: string, min: number): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) usage(`--${name} ${v}: expected an integer >= ${min}`);
  return n;
};
const seed = args.seed !== undefined ? int('seed', args.seed, 0) : Date.now() % 1_000_000_007;
const count = int('count', args.count, 0);
const chunk = int('chunk', args.chunk, 1);
const limit = int('limit', args.limit, 0);
const timeoutMs = int('timeout', args.timeout, 1) * 1000;
if (args.against !== 'soft' && args.against !== 'kvm') usage('--against must be soft or kvm');
const against = args.against as OracleAccel;
const families = args.families?.split(',').map((f) => f.trim()).filter(Boolean);
if (families) {
  const known = new Set(familyNames());
  for (const f of families) if (!known.has(f)) usage(`unknown family "${f}" (see --list)`);
}
const reproduce = (id: string) => `npm run fuzz:cpu -- --seed ${seed} --case '${id}'${against === 'kvm' ? ' --against kvm' : ''}`;
const say = (line: string) => process.stderr.write(`[fuzz:cpu] ${line}\n`);

interface Chunk { label: string; opts: OracleOptions }
const chunks: Chunk[] = [];
if (args.case) {
  const ids = args.case.split(',').map((s) => s.trim()).filter(Boolean);
  chunks.push({ label: `cases ${ids.join(', ')}`, opts: { seed, random: 0, only: ids } });
} else {
  if (!args['no-directed']) chunks.push({ label: 'directed families', opts: { seed, random: 0, directed: families ?? true } });
  for (let start = 0; start < count; start += chunk) {
    const n = Math.min(chunk, count - start);
    chunks.push({ label: `random ${start}-${start + n - 1}`, opts: { seed, random: n, randomStart: start, directed: false } });
  }
}

say(`seed ${seed}: ${chunks.length} guest run${chunks.length === 1 ? '' : 's'}, kvm vs ${against}`);
const t0 = performance.now();
const all: { report: OracleReport; m: Mismatch }[] = [];
const failedRuns: string[] = [];
let cases = 0;
let compared = 0;
const wall = { a: 0, b: 0 };
// The next chunk is generated and assembled while the current one runs.
let next = prepareOracle(chunks[0].opts);
for (const [i, c] of chunks.entries()) {
  const prepared = await next;
  if (i + 1 < chunks.length) next = prepareOracle(chunks[i + 1].opts);
  const report = await runPrepared(prepared, { accelA: 'kvm', accelB: against, timeoutMs });
  cases += report.cases;
  compared += report.compared;
  wall.a += report.a.wallMs;
  wall.b += report.b.wallMs;
  for (const m of report.mismatches) all.push({ report, m });
  const rate = (s: OracleReport['a']) => (s.wallMs > 0 ? `${Math.round((s.reached / s.wallMs) * 1000)}/s` : '-');
  say(
    `${i + 1}/${chunks.length} ${c.label}: ${report.cases} cases (generate ${(report.generateMs / 1000).toFixed(1)} s, nasm ${(report.buildMs / 1000).toFixed(1)} s), ` +
      `kvm ${report.a.outcome} ${(report.a.wallMs / 1000).toFixed(2)} s (${rate(report.a)}), ${against} ${report.b.outcome} ${(report.b.wallMs / 1000).toFixed(2)} s (${rate(report.b)}), ` +
      `${report.mismatches.length} mismatch${report.mismatches.length === 1 ? '' : 'es'}`,
  );
  if (report.a.outcome !== 'done' || report.b.outcome !== 'done') {
    failedRuns.push(formatReport(report, { limit: 0, reproduce }));
  }
}

// Summary: counts by family and field over all chunks, then the mismatches in full.
const out: string[] = [];
out.push(`fuzz:cpu seed ${seed}: ${cases} cases in ${chunks.length} runs, ${compared} compared, ${all.length} mismatches, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
out.push(`  time in the guest: kvm ${(wall.a / 1000).toFixed(2)} s (${Math.round(cases / (wall.a / 1000 || 1))} cases/s), ${against} ${(wall.b / 1000).toFixed(2)} s (${Math.round(cases / (wall.b / 1000 || 1))} cases/s)`);
if (all.length) {
  const { byFamily, byField } = tally(all.map((x) => x.m));
  out.push(`  by family: ${[...byFamily].sort((x, y) => y[1] - x[1]).map(([f, n]) => `${f} ${n}`).join(', ')}`);
  out.push(`  by field:  ${[...byField].sort((x, y) => y[1] - x[1]).map(([f, n]) => `${f} ${n}`).join(', ')}`);
}
for (const f of failedRuns) out.push('', f);
const full = all.map(({ report, m }) => `${formatMismatch(m, report.image, ['kvm', against === 'kvm' ? 'kvm#2' : against], report.pool)}\n  reproduce: ${reproduce(m.c.id ?? String(m.index))}`);
// One mismatch of each kind (family + differing fields) first, then the rest in order.
const { firsts: f1, rest: r1 } = distinctFirst(all.map((x, k) => ({ ...x.m, k })));
const firsts = f1.map((m) => m.k);
const rest = r1.map((m) => m.k);
const shown = [...firsts, ...rest].slice(0, limit);
for (const k of shown) out.push('', full[k]);
if (all.length > shown.length) out.push('', `... ${all.length - shown.length} more mismatches${args.report ? ` (all of them in ${args.report})` : ' (--report FILE writes all of them)'}`);
if (args.report) writeFileSync(args.report, `${out[0]}\n\n${full.join('\n\n')}\n`);
process.stdout.write(`${out.join('\n')}\n`);
process.exit(all.length || failedRuns.length ? 1 : 0);
