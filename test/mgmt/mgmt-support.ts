// Helpers for the management tests: the real `bin/tsvm` in child processes, each test file with
// its own runtime root (TSVM_RUNTIME_DIR) so that parallel test files never see each other's VMs.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { TSVM_BIN } from '../support/tsvm-process.js';
import { tsvmNodeArgs } from '../../src/cli/node-flags.js';

export interface Result {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const roots: string[] = [];

/** A fresh runtime root under /tmp (short, for Unix socket paths), removed when the test file ends. */
export function tempRoot(tag: string): string {
  const root = mkdtempSync(join('/tmp', `tsvm-${tag}-`));
  if (roots.length === 0) process.on('exit', () => { for (const r of roots) rmSync(r, { recursive: true, force: true }); });
  roots.push(root);
  return root;
}

export interface Proc {
  child: ChildProcess;
  result: Promise<Result>;
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout matches; rejects when the process ends first or after `ms`. */
  waitFor(re: RegExp, ms: number): Promise<void>;
}

export function start(root: string, args: string[], opts: { stdin?: 'pipe' | 'ignore'; timeoutMs?: number } = {}): Proc {
  const child = spawn(process.execPath, tsvmNodeArgs(TSVM_BIN, args), {
    stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'],
    env: { ...process.env, TSVM_RUNTIME_DIR: root },
  });
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; for (const w of waiters) w(); });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  let ended = false;
  const result = new Promise<Result>((resolve) => {
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      ended = true;
      for (const w of waiters) w();
      resolve({ status, signal, stdout: out, stderr: err });
    });
  });
  const waitFor = (re: RegExp, ms: number) => new Promise<void>((resolve, reject) => {
    const check = () => {
      if (re.test(out)) { done(); resolve(); } else if (ended) { done(); reject(new Error(`tsvm ${args[0]} ended before printing ${re}; stderr:\n${err}`)); }
    };
    const t = setTimeout(() => { done(); reject(new Error(`timed out waiting for ${re}; stdout:\n${out.slice(-1000)}\nstderr:\n${err}`)); }, ms);
    const done = () => { clearTimeout(t); waiters.delete(check); };
    waiters.add(check);
    check();
  });
  return { child, result, waitFor, stdout: () => out, stderr: () => err };
}

/** Runs a tsvm command to its end. */
export function tsvm(root: string, ...args: string[]): Promise<Result> {
  return start(root, args).result;
}

export interface PsRow {
  name: string;
  pid: number | null;
  state: string;
  vcpus: number | null;
  memory_mib: number | null;
  accel: string | null;
  uptime_s: number | null;
  api_socket: string | null;
  console_socket: string | null;
  metrics?: { serial: { tx_bytes: number; rx_bytes: number }; vcpu: { exits: number }; devices: Record<string, { writes: number }> };
}

export async function ps(root: string): Promise<PsRow[]> {
  const r = await tsvm(root, 'ps', '--json');
  if (r.status !== 0) throw new Error(`tsvm ps failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as PsRow[];
}

/** VM directories in the runtime root (dot-entries are work in progress, not VMs). */
export function dirNames(root: string): string[] {
  return readdirSync(root).filter((n) => !n.startsWith('.')).sort();
}

/** A plain HTTP request over a Unix socket, JSON in and out. */
export function http(socketPath: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown; raw: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const req = request({ socketPath, method, path, headers: payload ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } : {} }, (res) => {
      let raw = '';
      res.setEncoding('utf8').on('data', (d: string) => { raw += d; });
      res.on('end', () => {
        let parsed: unknown;
        try { parsed = raw ? JSON.parse(raw) : undefined; } catch { parsed = raw; }
        resolve({ status: res.statusCode!, body: parsed, raw });
      });
    });
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Numbers the counter guest printed, in order (a partial last line is left out). */
export function counterNumbers(text: string): number[] {
  const lines = text.split('\n');
  lines.pop();
  return lines.map((l) => Number(l));
}

/** Asserts-style check: the numbers run n, n+1, n+2, ... with nothing missing or repeated. */
export function gapIn(nums: number[]): string | undefined {
  for (let i = 1; i < nums.length; i++) {
    if (nums[i] !== nums[i - 1] + 1) return `after ${nums[i - 1]} came ${nums[i]} (line ${i})`;
  }
  return undefined;
}

/** Whether a process runs (exists and is not a zombie waiting for a parent to reap it). */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/** Test cleanup: SIGKILL every VM process still registered under `root`. */
export function killAll(root: string): void {
  for (const name of dirNames(root)) {
    try {
      const info = JSON.parse(readFileSync(join(root, name, 'info.json'), 'utf8')) as { pid: number };
      if (running(info.pid)) process.kill(info.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}
