// Runs an oracle image in a tsvm Vm (through the library, as any embedder would) and copies the
// result table, the control page and the panic page out of guest RAM once the guest has stopped.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Vm, defaultConfig, validateConfig, type VmExit } from '../../src/index.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import type { OracleImage } from './image.js';
import * as L from './layout.js';

export type OracleAccel = 'kvm' | 'soft';

export interface RawRun {
  accel: OracleAccel;
  exit: VmExit;
  /** How the run ended, from the harness's point of view. */
  outcome: 'done' | 'panic' | 'timeout' | 'vm-error';
  wallMs: number;
  /** RESULT_SIZE bytes per case (all zero for cases never reached). */
  results: Uint8Array;
  control: Uint8Array;
  panic: Uint8Array;
  console: string;
  log: string[];
}

/** The guest memory a finished Vm leaves behind (`Vm.guestMemory`, kept after `run()` resolves). */
export function guestMemoryOf(vm: Vm): GuestMemory {
  const mem = vm.guestMemory;
  if (!mem) throw new Error('the Vm has no guest memory (it never started)');
  return mem;
}

export async function runImage(image: OracleImage, accel: OracleAccel, opts: { timeoutMs: number; name?: string }): Promise<RawRun> {
  const dir = await mkdtemp(join(tmpdir(), 'tsvm-oracle-run-'));
  const path = join(dir, 'oracle.elf');
  const log: string[] = [];
  let consoleText = '';
  try {
    await writeFile(path, image.bytes);
    const config = validateConfig({
      ...defaultConfig(),
      name: opts.name ?? `oracle-${accel}`,
      kernel: path,
      accel,
      memoryBytes: image.memoryBytes,
      noReboot: true,
    });
    let vm: Vm;
    try {
      vm = await Vm.create(config, {
      consoleOutput: (b) => { consoleText += Buffer.from(b).toString('latin1'); },
      log: (l) => log.push(l),
      });
    } catch (e) {
      return failed(accel, `Vm.create failed: ${(e as Error).message}`, log);
    }
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; vm.stop(`the oracle run took longer than ${opts.timeoutMs} ms`); }, opts.timeoutMs);
    const t0 = performance.now();
    let exit: VmExit;
    try {
      exit = await vm.run();
    } catch (e) {
      // An accelerator that throws instead of reporting (e.g. an unimplemented part of the soft CPU).
      const err = e as Error;
      return failed(accel, `vm.run() threw: ${err.stack ?? err.message}`, log);
    } finally {
      clearTimeout(timer);
    }
    const wallMs = performance.now() - t0;
    let outcome: RawRun['outcome'] = 'vm-error';
    if (timedOut) outcome = 'timeout';
    else if (exit.reason === 'debug-exit' && exit.code === L.exitStatusOf(L.EXIT_DONE)) outcome = 'done';
    else if (exit.reason === 'debug-exit' && exit.code === L.exitStatusOf(L.EXIT_PANIC)) outcome = 'panic';
    const results = new Uint8Array(image.cases.length * L.RESULT_SIZE);
    const control = new Uint8Array(4096);
    const panic = new Uint8Array(L.RESULT_HEADER_SIZE);
    try {
      const mem = guestMemoryOf(vm);
      results.set(mem.slice(image.resultsAddr, results.length));
      control.set(mem.slice(L.CONTROL_ADDR, 4096));
      panic.set(mem.slice(L.PANIC_ADDR, L.RESULT_HEADER_SIZE));
    } catch (e) {
      if (outcome === 'done') throw e;
      log.push(`could not read guest memory: ${(e as Error).message}`);
    }
    return { accel, exit, outcome, wallMs, results, control, panic, console: consoleText, log };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function failed(accel: OracleAccel, message: string, log: string[]): RawRun {
  return {
    accel,
    exit: { code: 1, reason: 'error', message },
    outcome: 'vm-error',
    wallMs: 0,
    results: new Uint8Array(0),
    control: new Uint8Array(4096),
    panic: new Uint8Array(L.RESULT_HEADER_SIZE),
    console: '',
    log,
  };
}
