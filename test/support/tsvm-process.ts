// Running the real `bin/tsvm` command in a child process, as a user would, for end-to-end tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './guests.js';
import { tsvmNodeArgs } from '../../src/cli/node-flags.js';

export interface TsvmResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export const TSVM_BIN = join(repoRoot(), 'bin', 'tsvm');

/** Whether /dev/kvm can be opened for writing here; a reason when it cannot (tests skip with it). */
export function kvmUnavailableReason(): string | undefined {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return undefined;
  } catch (e) {
    return `/dev/kvm is not usable here (${(e as NodeJS.ErrnoException).code}); KVM tests need it`;
  }
}

export interface TsvmRun {
  child: ChildProcess;
  result: Promise<TsvmResult>;
  /** Resolves when stdout (the guest console) has shown `text`; rejects if the process ends first. */
  waitFor(text: string | RegExp, timeoutMs: number): Promise<void>;
  stdout(): string;
  stderr(): string;
}

export function startTsvm(args: string[], opts: { timeoutMs: number; input?: string }): TsvmRun {
  const child = spawn(process.execPath, tsvmNodeArgs(TSVM_BIN, args), { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let timedOut = false;
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; for (const w of waiters) w(); });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
  if (opts.input !== undefined) child.stdin!.write(opts.input);
  const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, opts.timeoutMs);
  const result = new Promise<TsvmResult>((resolve) => {
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      for (const w of waiters) w();
      resolve({ status, signal, stdout: out, stderr: err, timedOut });
    });
  });
  let exited = false;
  void result.then(() => { exited = true; });
  const waitFor = (text: string | RegExp, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      const seen = () => (typeof text === 'string' ? out.includes(text) : text.test(out));
      const check = () => {
        if (seen()) { cleanup(); resolve(); } else if (exited) { cleanup(); reject(new Error(`tsvm ended before printing ${text}; stderr:\n${err}`)); }
      };
      const t = setTimeout(() => { cleanup(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${text}; console so far:\n${out.slice(-2000)}`)); }, timeoutMs);
      const cleanup = () => { clearTimeout(t); waiters.delete(check); };
      waiters.add(check);
      check();
    });
  return { child, result, waitFor, stdout: () => out, stderr: () => err };
}

export function runTsvm(args: string[], opts: { timeoutMs: number; input?: string }): Promise<TsvmResult> {
  const r = startTsvm(args, opts);
  if (opts.input === undefined) r.child.stdin!.end();
  return r.result;
}

/**
 * Commands for the shell on a started guest's console, one at a time: `sh(cmd)` types `cmd`,
 * waits for an end marker and returns what the command printed (with the echoed command line).
 * The shell echoes what is typed, so the marker is printed by `echo` from a split string and
 * matched as a word of its own.
 */
export function guestShell(run: TsvmRun): (cmd: string, timeoutMs?: number) => Promise<string> {
  let n = 0;
  return async (cmd, timeoutMs = 60_000) => {
    const id = `${++n}`;
    const before = run.stdout().length;
    run.child.stdin!.write(`${cmd}; echo "done-""${id}"\n`);
    await run.waitFor(new RegExp(`(^|\\n)done-${id}\\r?\\n`), timeoutMs);
    const out = run.stdout().slice(before);
    return out.slice(0, out.lastIndexOf(`done-${id}`));
  };
}
