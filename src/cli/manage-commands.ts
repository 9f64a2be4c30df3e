// `tsvm ps`, `stop`, `kill`, `pause`, `resume`: find VMs through the runtime directory and talk
// to them over their API sockets (signals only where the API cannot answer).
import { parseArgs } from 'node:util';
import { apiRequest, ApiUnreachableError, faultMessage } from '../api/client.js';
import { findVm, isAlive, listRuntime, runtimeRoot, type RuntimeEntry, type RuntimeInfo } from '../vmm/runtime-dir.js';
import { ConfigError } from '../vmm/vm-config.js';
import { withArgErrors } from './run-args.js';
import { KILL_USAGE, PAUSE_USAGE, PS_USAGE, RESUME_USAGE, STOP_USAGE } from './usage.js';

/** One line of `tsvm ps` (and one element of `tsvm ps --json`). */
export interface PsRow {
  name: string;
  pid: number | null;
  /** running, paused, created (waiting for InstanceStart), unresponsive (its API does not answer), gone (its process died; directory removed now). */
  state: 'running' | 'paused' | 'created' | 'unresponsive' | 'gone';
  vcpus: number | null;
  memory_mib: number | null;
  accel: string | null;
  uptime_s: number | null;
  api_socket: string | null;
  console_socket: string | null;
  runtime_dir: string;
  metrics?: unknown;
}

interface InstanceInfo {
  state: 'Not started' | 'Running' | 'Paused';
  vcpu_count?: number;
  mem_size_mib?: number;
  accel?: string;
  uptime_ms?: number;
}

const STATES: Record<InstanceInfo['state'], PsRow['state']> = { 'Not started': 'created', Running: 'running', Paused: 'paused' };

async function psRow(e: RuntimeEntry, withMetrics: boolean): Promise<PsRow> {
  const row: PsRow = {
    name: e.name,
    pid: e.info?.pid ?? null,
    state: 'gone',
    vcpus: null,
    memory_mib: null,
    accel: null,
    uptime_s: null,
    api_socket: e.info?.apiSocket ?? null,
    console_socket: e.info?.consoleSocket ?? null,
    runtime_dir: e.dir,
  };
  if (e.status === 'gone' || !e.info) return row;
  try {
    const r = await apiRequest(e.info.apiSocket, 'GET', '/', undefined, 2000);
    const info = r.body as InstanceInfo;
    row.state = STATES[info.state] ?? 'unresponsive';
    row.vcpus = info.vcpu_count ?? null;
    row.memory_mib = info.mem_size_mib ?? null;
    row.accel = info.accel ?? null;
    row.uptime_s = info.uptime_ms !== undefined && row.state !== 'created' ? Math.floor(info.uptime_ms / 1000) : null;
    if (withMetrics) row.metrics = (await apiRequest(e.info.apiSocket, 'GET', '/metrics', undefined, 2000)).body;
  } catch {
    row.state = 'unresponsive';
  }
  return row;
}

/** Every VM under the runtime root; stale directories are removed (and reported as gone). */
export async function listVms(withMetrics = false, root = runtimeRoot()): Promise<PsRow[]> {
  return Promise.all(listRuntime(root).map((e) => psRow(e, withMetrics)));
}

function formatUptime(s: number | null): string {
  if (s === null) return '-';
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor(s / 3600) % 24).padStart(2, '0')}h`;
}

export function formatPsTable(rows: PsRow[]): string {
  const header = ['NAME', 'PID', 'STATE', 'CPUS', 'MEMORY', 'ACCEL', 'UPTIME'];
  const lines = rows.map((r) => [
    r.name,
    r.pid === null ? '-' : String(r.pid),
    r.state,
    r.vcpus === null ? '-' : String(r.vcpus),
    r.memory_mib === null ? '-' : `${r.memory_mib}M`,
    r.accel ?? '-',
    formatUptime(r.uptime_s),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  return [header, ...lines].map((l) => l.map((c, i) => (i === l.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}

export async function psCommand(argv: string[]): Promise<number> {
  const { values: v } = withArgErrors('ps', () => parseArgs({ args: argv, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  if (v.help) {
    process.stdout.write(PS_USAGE);
    return 0;
  }
  const rows = await listVms(v.json === true);
  process.stdout.write(v.json ? `${JSON.stringify(rows, null, 2)}\n` : formatPsTable(rows));
  return 0;
}

/** The single NAME argument of stop/kill/pause/resume/console. */
export function nameArgument(command: string, argv: string[], options: Record<string, { type: 'string' | 'boolean'; short?: string }>, usage: string) {
  const parsed = withArgErrors(command, () => parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true }));
  if (parsed.values.help) {
    process.stdout.write(usage);
    return undefined;
  }
  if (parsed.positionals.length !== 1) throw new ConfigError(`tsvm ${command} takes one VM name (see tsvm ${command} --help)`);
  return { name: parsed.positionals[0], values: parsed.values as Record<string, string | boolean | undefined> };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits until the VM's process has ended; false if it is still there after `ms`. */
async function waitGone(info: RuntimeInfo, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (isAlive(info)) {
    if (Date.now() > end) return false;
    await sleep(20);
  }
  return true;
}

/** Kills the process and removes what it left behind. */
async function killHard(e: { info: RuntimeInfo; name: string }): Promise<void> {
  try {
    process.kill(e.info.pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw new ConfigError(`cannot kill pid ${e.info.pid}: ${(err as Error).message}`);
  }
  if (!(await waitGone(e.info, 5000))) throw new ConfigError(`pid ${e.info.pid} did not end after SIGKILL`);
  listRuntime(); // removes the now stale directory
}

export async function stopCommand(argv: string[]): Promise<number> {
  const a = nameArgument('stop', argv, { timeout: { type: 'string', short: 't' } }, STOP_USAGE);
  if (!a) return 0;
  const timeoutText = a.values.timeout as string | undefined;
  if (timeoutText !== undefined && !/^\d+$/.test(timeoutText)) throw new ConfigError(`--timeout "${timeoutText}" is not a whole number of seconds`);
  const e = findVm(a.name);
  let timeoutS = timeoutText !== undefined ? Number(timeoutText) : undefined;
  try {
    const info = await apiRequest(e.info.apiSocket, 'GET', '/', undefined, 2000);
    if ((info.body as InstanceInfo).state === 'Not started') {
      process.kill(e.info.pid, 'SIGTERM'); // no guest to ask: the VMM just ends
    } else {
      const body: Record<string, unknown> = { action_type: 'Shutdown' };
      if (timeoutS !== undefined) body.timeout_s = timeoutS;
      else {
        const cfg = await apiRequest(e.info.apiSocket, 'GET', '/vm/config', undefined, 2000);
        timeoutS = (cfg.body as { tsvm?: { shutdown_grace_s?: number } } | undefined)?.tsvm?.shutdown_grace_s;
      }
      const r = await apiRequest(e.info.apiSocket, 'PUT', '/actions', body, 2000);
      if (r.status !== 204) throw new ConfigError(`${a.name}: ${faultMessage(r)}`);
    }
  } catch (err) {
    if (!(err instanceof ApiUnreachableError)) throw err;
    // The API does not answer: SIGTERM does the same (power button, then a forced stop).
    process.kill(e.info.pid, 'SIGTERM');
  }
  timeoutS ??= 10;
  // The VMM forces the stop after the timeout itself; allow it a few seconds more before SIGKILL.
  if (!(await waitGone(e.info, timeoutS * 1000 + 5000))) {
    await killHard(e);
    process.stderr.write(`tsvm: ${a.name} did not stop within ${timeoutS + 5} s; killed it\n`);
  } else {
    listRuntime();
  }
  process.stdout.write(`${a.name}\n`);
  return 0;
}

export async function killCommand(argv: string[]): Promise<number> {
  const a = nameArgument('kill', argv, {}, KILL_USAGE);
  if (!a) return 0;
  const e = findVm(a.name);
  await killHard(e);
  process.stdout.write(`${a.name}\n`);
  return 0;
}

async function setState(command: 'pause' | 'resume', argv: string[]): Promise<number> {
  const a = nameArgument(command, argv, {}, command === 'pause' ? PAUSE_USAGE : RESUME_USAGE);
  if (!a) return 0;
  const e = findVm(a.name);
  let r;
  try {
    r = await apiRequest(e.info.apiSocket, 'PATCH', '/vm', { state: command === 'pause' ? 'Paused' : 'Resumed' }, 5000);
  } catch (err) {
    throw new ConfigError(`${a.name}: ${(err as Error).message}`);
  }
  if (r.status !== 204) throw new ConfigError(`${a.name}: ${faultMessage(r)}`);
  process.stdout.write(`${a.name}\n`);
  return 0;
}

export const pauseCommand = (argv: string[]) => setState('pause', argv);
export const resumeCommand = (argv: string[]) => setState('resume', argv);
