// A VM driven through its serial console, for the benchmarks that boot the Debian guest under tsvm
// and under QEMU side by side (bench/boot.ts, bench/syscalls.ts): start the process, wait for a
// line on its console, type commands, stop it. Also the two command lines, built the same way for
// both benchmarks.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tsvmNodeArgs } from '../src/cli/node-flags.js';
import { median } from './median.js';

export const APPEND = 'console=ttyS0 panic=-1';
/** The kernel's line as it starts /init: the end of a boot for the benchmarks that time one. */
export const INIT_LINE = /Run \/init as init process/;
/** The default guest's initramfs, ready for commands at its shell. */
export const READY_LINE = /tsvm-initramfs: ready/;
const tsvm = join(fileURLToPath(new URL('../..', import.meta.url)), 'bin', 'tsvm');
/** QEMU, when Debian's qemu-system-x86 is installed. */
export const qemu = ['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64'].find((p) => existsSync(p));

/** tsvm started the way `tsvm run` starts from a shell (bin/tsvm's shebang: node with NODE_FLAGS). */
export function tsvmCommand(kernel: string, initrd: string): [string, string[]] {
  return [process.execPath, tsvmNodeArgs(tsvm, ['run', '--accel', 'soft', '--kernel', kernel, '--initrd', initrd, '--memory', '256M', '--append', APPEND])];
}

/**
 * Seconds the boot benchmarks wait before each boot (BENCH_PAUSE_S, default 5; 0: none). On this
 * development VM a QEMU TCG boot that starts within ~1-2 s of another QEMU boot's exit took
 * 1.6-1.8 s to /init with 0.05 s of system time, and 1.95-2.15 s with 0.45 s of system time after
 * a pause of 3-5 s or after a tsvm boot (the same user time and page faults; tsvm's boots took the
 * same either way). The VM reports freed pages to its own host (the page_reporting module: after
 * ~2 s), so a boot that touches the pages the last one freed within that window finds them still
 * backed. A user's single boot is the paused case; every boot of both VMMs waits the same pause
 * (docs/BENCHMARKS.md, bench:boot).
 */
export const PAUSE_S = Number(process.env.BENCH_PAUSE_S ?? 5);

/** Wait PAUSE_S seconds (before a boot). */
function pause(): Promise<void> {
  return new Promise((r) => setTimeout(r, PAUSE_S * 1000));
}

/**
 * One timed boot of the boot benchmarks: after the pause, start `command`, wait for the kernel's
 * "Run /init" line, stop the VM. Seconds from process start to that line, and the console so far.
 */
export async function bootToInit(command: [string, string[]]): Promise<{ seconds: number; output: string }> {
  await pause();
  const vm = ConsoleVm.start(command);
  const { seconds } = await vm.waitFor(INIT_LINE);
  await vm.stop();
  return { seconds, output: vm.output };
}

export function qemuCommand(kernel: string, initrd: string): [string, string[]] {
  return [qemu!, ['-accel', 'tcg', '-m', '256', '-nographic', '-no-reboot', '-kernel', kernel, '-initrd', initrd, '-append', APPEND]];
}

/** The median of `runs` samples taken one after the other; `report(i, value)` after each (i from 1). */
export async function medianOf(runs: number, sample: () => Promise<number>, report: (i: number, value: number) => void): Promise<number> {
  const values: number[] = [];
  for (let i = 1; i <= runs; i++) {
    values.push(await sample());
    report(i, values[i - 1]!);
  }
  return median(values);
}

export class ConsoleVm {
  readonly started = performance.now();
  private out = '';
  /** Where the next waitFor starts looking (what earlier waits matched is not matched again). */
  private from = 0;
  /** The pending waitFor's check, run on every chunk of console output. */
  private check: (() => void) | null = null;
  private readonly ended: Promise<void>;
  private exited = false;
  /** The end of the VMM's stderr (its log), for the message when it ends before a wait is met. */
  private errTail = '';
  private status = '';

  private constructor(readonly child: ChildProcess, private readonly name: string) {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { this.out += d; this.check?.(); });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { this.errTail = (this.errTail + d).slice(-2000); });
    this.ended = new Promise((r) => child.on('close', (code, signal) => {
      this.status = signal ? `signal ${signal}` : `exit code ${code}`;
      this.exited = true;
      this.check?.();
      r();
    }));
  }

  static start([cmd, args]: [string, string[]], env: NodeJS.ProcessEnv = process.env): ConsoleVm {
    return new ConsoleVm(spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env }), cmd);
  }

  /**
   * Wait until `pattern` appears on the console after what earlier waits matched; resolves with
   * the match and the seconds since the process started (taken when the output arrives). Rejects
   * with the console's tail when the process ends or `timeoutMs` passes first.
   */
  waitFor(pattern: RegExp, timeoutMs = 300_000): Promise<{ match: RegExpExecArray; seconds: number }> {
    return new Promise((resolve, reject) => {
      const done = (err?: Error, match?: RegExpExecArray) => {
        clearTimeout(timer);
        this.check = null;
        if (err) reject(err);
        else resolve({ match: match!, seconds: (performance.now() - this.started) / 1000 });
      };
      const timer = setTimeout(() => done(new Error(`${this.name}: no ${pattern} within ${timeoutMs / 1000} s:\n${this.out.slice(-1500)}`)), timeoutMs);
      this.check = () => {
        const m = pattern.exec(this.out.slice(this.from));
        if (m) {
          this.from += m.index + m[0].length;
          done(undefined, m);
        } else if (this.exited) {
          done(new Error(`${this.name} ended (${this.status}) before ${pattern}:\n${this.out.slice(-1500)}\n-- its stderr:\n${this.errTail}`));
        }
      };
      this.check();
    });
  }

  /** Everything the guest wrote to the console so far. */
  get output(): string { return this.out; }

  /** Type a line on the console. */
  send(line: string): void { this.child.stdin!.write(`${line}\n`); }

  async stop(): Promise<void> {
    if (!this.exited) this.child.kill('SIGKILL');
    await this.ended;
  }

  /** Stop it with SIGTERM, which lets tsvm run its exit handlers (statistics, TSVM_SOFT_JIT_RECORD). */
  async terminate(): Promise<void> {
    if (!this.exited) this.child.kill('SIGTERM');
    await this.ended;
  }
}
