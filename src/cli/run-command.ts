// `tsvm run`: boot one VM in this process, its console on this terminal; or, with --detach, in a
// background process whose name is printed once it runs; or, with --api-sock and no boot source,
// wait for the configuration on the API socket as Firecracker does.
//
// Every VM, foreground or not, gets a runtime directory (pid, API socket, console socket, the
// config it booted with) so that `tsvm ps/stop/kill/pause/resume/console` find it; it is removed
// on every way out but SIGKILL (then the next `tsvm ps` cleans it up).
import { appendFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SerialConsole } from '../vmm/serial-console.js';
import { EXIT_VMM_ERROR, Vm, type VmExit } from '../vmm/vm.js';
import { stderrLogger, type Logger } from '../vmm/log.js';
import { VmInstance } from '../vmm/runtime-instance.js';
import { ConfigError } from '../vmm/vm-config.js';
import { parseRunArgs, RUN_OPTIONS } from './run-args.js';
import { RUN_USAGE } from './usage.js';
import { tsvmNodeArgs } from './node-flags.js';
import { distSrcUrl, tsvmVersion } from '../paths.js';

/** The shell's convention: 128 + the signal number. */
const SIGNAL_STATUS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

/** Set in the environment of the background process that `tsvm run --detach` starts. */
const DETACHED_ENV = 'TSVM_DETACHED_CHILD';

export async function runCommand(argv: string[]): Promise<number> {
  const args = parseRunArgs(argv);
  if (args.help) {
    process.stdout.write(RUN_USAGE);
    return 0;
  }
  if (args.detach && process.env[DETACHED_ENV] !== '1') return detach(argv, args.config.name);
  const detached = process.env[DETACHED_ENV] === '1' && typeof process.send === 'function';
  const config = args.config;

  // A detached VM also writes its messages to the log file in its runtime directory; its stderr
  // goes to `tsvm run --detach` until the VM is up, and nowhere after.
  let stderrOpen = true;
  const logTo: { file?: string } = {};
  const log: Logger = detached
    ? (line) => {
      if (stderrOpen) stderrLogger(line);
      if (logTo.file) {
        try { appendFileSync(logTo.file, `${new Date().toISOString()} ${line}\n`); } catch { /* the directory is going away */ }
      }
    }
    : stderrLogger;
  if (detached) process.stderr.on('error', () => { stderrOpen = false; });

  // `ps` and `top` show VMs by name (the kernel keeps the first 15 bytes as the thread name).
  process.title = `tsvm:${config.name}`;
  // The boot files are read before anything else, so a wrong path fails as it always has.
  const vm = args.bootable ? await Vm.create(config, { log }) : undefined;
  const inst = new VmInstance({ config, log, version: tsvmVersion(), apiSocket: args.apiSocket });
  await inst.open(!detached);
  logTo.file = inst.runtimeDir?.logFile;

  let quitting = false;
  const console = detached
    ? undefined
    : new SerialConsole({
      input: process.stdin,
      output: process.stdout,
      onQuit: () => {
        quitting = true;
        const g = inst.guest;
        if (g) void g.stop('quit from the console (Ctrl-A x)');
        else inst.abort({ code: 0, reason: 'stopped', message: 'quit from the console (Ctrl-A x)' });
      },
    });
  if (console) {
    inst.onConsoleOutput((bytes) => console.write(bytes));
    console.onInput = (bytes) => inst.consoleInput(bytes);
    // --console virtio: stdout is hvc0; what the guest still writes to COM1 (early boot
    // messages, a panic before virtio_console loads) goes to stderr, untouched, so it is seen
    // without mixing into the console's stream.
    inst.onSerialOutput((bytes) => process.stderr.write(bytes));
  }

  let signalled: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    const g = inst.guest;
    if (!g) {
      signalled = sig;
      inst.abort({ code: SIGNAL_STATUS[sig] ?? 143, reason: 'stopped', message: `stopped by ${sig} before the guest was started` });
      return;
    }
    if (signalled) {
      // A second signal: stop now.
      void g.stop(`stopped by ${sig}`);
      return;
    }
    signalled = sig;
    const listening = g.status === 'running' && g.powerButton();
    const grace = g.config.shutdownGraceSeconds;
    log(`${sig}: ${listening ? `pressed the ACPI power button; forcing a stop in ${grace} s` : 'the guest does not listen to the ACPI power button; stopping it'}`);
    if (!listening) void g.stop(`stopped by ${sig}`);
    else setTimeout(() => void g.stop(`stopped by ${sig}: the guest did not power off within ${grace} s`), grace * 1000).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onSignal);

  let exit: VmExit;
  try {
    const running = vm ? await inst.boot(vm) : true;
    if (!vm) log(`no guest yet: waiting for its configuration and InstanceStart on the API socket ${inst.apiSocket}`);
    if (detached && running) {
      process.send!({ ready: true, name: inst.name }, () => {
        stderrOpen = false;
        process.disconnect?.();
      });
    }
    exit = await inst.exited;
  } catch (e) {
    console?.close();
    await inst.close();
    log((e as Error).message);
    return EXIT_VMM_ERROR;
  }
  console?.close();
  await inst.close();
  if (quitting) return 0;
  if (signalled && exit.reason === 'stopped') {
    log(exit.message);
    return SIGNAL_STATUS[signalled] ?? 143;
  }
  if (inst.stopRequestedByHost && exit.reason === 'stopped') {
    log(exit.message);
    return 0;
  }
  if (exit.code !== 0 || exit.reason !== 'poweroff') log(exit.message);
  return exit.code;
}

/**
 * `tsvm run --detach`: starts the same command as a background process (its own session, no
 * terminal), relays its messages until the VM runs, then prints the VM's name and returns.
 */
async function detach(argv: string[], name: string): Promise<number> {
  const { tokens } = parseArgs({ args: argv, options: RUN_OPTIONS, strict: true, allowPositionals: false, tokens: true });
  const drop = new Set(tokens.filter((t) => t.kind === 'option' && t.name === 'detach').map((t) => t.index));
  const childArgv = argv.filter((_a, i) => !drop.has(i));
  if (!tokens.some((t) => t.kind === 'option' && (t.name === 'name' || t.name === 'id'))) childArgv.push('--name', name);
  const bin = fileURLToPath(distSrcUrl('../../bin/tsvm'));
  const child = spawn(process.execPath, tsvmNodeArgs(bin, ['run', ...childArgv]), {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: { ...process.env, [DETACHED_ENV]: '1' },
  });
  child.stderr!.on('data', (d: Buffer) => process.stderr.write(d));
  const outcome = await new Promise<{ ready: true } | { ready: false; code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.on('message', (m: { ready?: boolean }) => { if (m?.ready) resolve({ ready: true }); });
    child.on('exit', (code, signal) => resolve({ ready: false, code, signal }));
    child.on('error', (error) => resolve({ ready: false, code: null, signal: null, error }));
  });
  if (!outcome.ready) {
    if (outcome.error) throw new ConfigError(`could not start the background VM: ${outcome.error.message}`);
    return outcome.code ?? 1;
  }
  child.stderr!.destroy();
  if (child.connected) child.disconnect();
  child.unref();
  process.stdout.write(`${name}\n`);
  return 0;
}
