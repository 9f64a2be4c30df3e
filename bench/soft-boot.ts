// Boot time of the stock Debian cloud kernel to "Run /init as init process" under the software
// CPU: the interpreter alone (TSVM_SOFT_JIT=0), the interpreter with the JIT, and QEMU TCG on the
// same kernel and initrd when /usr/bin/qemu-system-x86_64 exists. Wall time from process start to
// that console line; the process is then stopped. Prints the times and the ratios.
// Usage: node dist/bench/soft-boot.js [--runs N] [--only interp,jit,qemu] [--timeout S] [--initrd FILE]
// (default initrd: the newest ~/.cache/tsvm/guests/default/initrd-*.cpio.gz)

import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tsvmNodeArgs } from '../src/cli/node-flags.js';

const MARK = 'Run /init as init process';
const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const cache = join(homedir(), '.cache', 'tsvm');

function findOne(dir: string, test: (name: string) => boolean): string | undefined {
  if (!existsSync(dir)) return undefined;
  const hit = readdirSync(dir).find(test);
  return hit ? join(dir, hit) : undefined;
}

function newest(dir: string, test: (name: string) => boolean): string | undefined {
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir).filter(test).map((n) => join(dir, n));
  files.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return files[0];
}

function kernelPath(): string | undefined {
  const debs = join(cache, 'debs');
  const pkg = findOne(debs, (n) => /^linux-image-.*-cloud-amd64_/.test(n) && !n.endsWith('.deb'));
  return pkg ? findOne(join(pkg, 'boot'), (n) => n.startsWith('vmlinuz-')) : undefined;
}

interface Result { name: string; seconds: number | null; cpu: number | null; note: string }

/** CPU seconds (user + system, all threads) a process has used so far, from /proc (Linux). */
function cpuSeconds(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return null;
  }
}

function timeToMark(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutS: number): Promise<Result> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let settled = false;
    const finish = (seconds: number | null, note: string) => {
      if (settled) return;
      const cpu = seconds === null ? null : cpuSeconds(child.pid);
      settled = true;
      clearTimeout(timer);
      // SIGTERM first so that tsvm can report (TSVM_SOFT_JIT_STATS=1 prints the JIT's counters)
      child.kill('SIGTERM');
      const hard = setTimeout(() => child.kill('SIGKILL'), 3000);
      child.once('exit', () => {
        clearTimeout(hard);
        const stats = /tsvm: soft JIT: .*/.exec(out);
        resolve({ name, seconds, cpu, note: stats ? stats[0] : note });
      });
    };
    const timer = setTimeout(() => finish(null, `no "${MARK}" within ${timeoutS} s`), timeoutS * 1000);
    const onData = (d: Buffer) => {
      out += d.toString('latin1');
      if (out.includes(MARK)) finish((performance.now() - t0) / 1000, '');
      if (out.length > 1 << 20) out = out.slice(-4096);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => { if (!settled) { settled = true; clearTimeout(timer); resolve({ name, seconds: null, cpu: null, note: `exited (${code}) before the line; last output: ${out.slice(-300)}` }); } });
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = (n: string, d: string) => { const i = argv.indexOf(n); return i >= 0 ? argv[i + 1]! : d; };
  const runs = Number(opt('--runs', '1'));
  const only = new Set(opt('--only', 'interp,jit,qemu').split(','));
  const timeoutS = Number(opt('--timeout', '180'));
  const kernel = kernelPath();
  const initrd = opt('--initrd', '') || newest(join(cache, 'guests', 'default'), (n) => n.startsWith('initrd-') && n.endsWith('.cpio.gz'));
  if (!kernel || !initrd) {
    process.stderr.write('the Debian cloud kernel or the default initrd is not cached yet (~/.cache/tsvm); run the default guest once first\n');
    process.exit(1);
  }
  const append = 'console=ttyS0 panic=-1';
  const tsvm = join(root, 'bin', 'tsvm');
  const tsvmArgs = tsvmNodeArgs(tsvm, ['run', '--accel', 'soft', '--kernel', kernel, '--initrd', initrd, '--append', append, '--memory', '256M']);
  const qemu = '/usr/bin/qemu-system-x86_64';
  const configs: { name: string; cmd: string; args: string[]; env: NodeJS.ProcessEnv }[] = [];
  if (only.has('interp')) configs.push({ name: 'soft, interpreter', cmd: process.execPath, args: tsvmArgs, env: { ...process.env, TSVM_SOFT_JIT: '0' } });
  if (only.has('jit')) configs.push({ name: 'soft, JIT', cmd: process.execPath, args: tsvmArgs, env: { ...process.env, TSVM_SOFT_JIT: '1' } });
  if (only.has('qemu') && existsSync(qemu)) {
    configs.push({
      name: 'QEMU TCG',
      cmd: qemu,
      args: ['-accel', 'tcg', '-m', '256M', '-nographic', '-no-reboot', '-kernel', kernel, '-initrd', initrd, '-append', append],
      env: process.env,
    });
  }
  const best = new Map<string, number>();
  for (let r = 0; r < runs; r++) {
    for (const c of configs) {
      const res = await timeToMark(c.name, c.cmd, c.args, c.env, timeoutS);
      const cpu = res.cpu === null ? '' : ` (CPU ${res.cpu.toFixed(2)} s)`;
      const line = res.seconds === null ? `failed: ${res.note}` : `${res.seconds.toFixed(2)} s${cpu}${res.note ? `  ${res.note}` : ''}`;
      process.stdout.write(`${c.name.padEnd(20)} run ${r + 1}: ${line}\n`);
      if (res.seconds !== null) best.set(c.name, Math.min(best.get(c.name) ?? Infinity, res.seconds));
    }
  }
  process.stdout.write('\nbest of runs, wall time from process start to "Run /init as init process":\n');
  const q = best.get('QEMU TCG');
  const interp = best.get('soft, interpreter');
  for (const [name, s] of best) {
    const ratios: string[] = [];
    if (q && name !== 'QEMU TCG') ratios.push(`${(s / q).toFixed(2)}x QEMU TCG`);
    if (interp && name !== 'soft, interpreter' && name !== 'QEMU TCG') ratios.push(`${(interp / s).toFixed(2)}x faster than the interpreter`);
    process.stdout.write(`  ${name.padEnd(20)} ${s.toFixed(2)} s${ratios.length ? `  (${ratios.join(', ')})` : ''}\n`);
  }
}

await main();
