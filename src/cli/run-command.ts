// `tsvm run`: boot one VM in this process, its console on this terminal.
import { SerialConsole } from '../vmm/serial-console.js';
import { EXIT_VMM_ERROR, Vm } from '../vmm/vm.js';
import { stderrLogger } from '../vmm/log.js';
import { parseRunArgs } from './run-args.js';
import { RUN_USAGE } from './usage.js';

/** The shell's convention: 128 + the signal number. */
const SIGNAL_STATUS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

export async function runCommand(argv: string[]): Promise<number> {
  const args = parseRunArgs(argv);
  if (args.help) {
    process.stdout.write(RUN_USAGE);
    return 0;
  }
  const config = args.config;
  const log = stderrLogger;
  // `ps` and `top` show VMs by name (the kernel keeps the first 15 bytes as the thread name).
  process.title = `tsvm:${config.name}`;
  const vm = await Vm.create(config, { log });
  let quitting = false;
  const console = new SerialConsole({
    input: process.stdin,
    output: process.stdout,
    onQuit: () => {
      quitting = true;
      vm.stop('quit from the console (Ctrl-A x)');
    },
  });
  vm.onConsoleOutput((bytes) => console.write(bytes));
  console.onInput = (bytes) => vm.consoleInput(bytes);

  let signalled: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      // A second signal: stop now.
      vm.stop(`stopped by ${sig}`);
      return;
    }
    signalled = sig;
    const listening = vm.powerButton();
    const grace = config.shutdownGraceSeconds;
    log(`${sig}: ${listening ? `pressed the ACPI power button; forcing a stop in ${grace} s` : 'the guest does not listen to the ACPI power button; stopping it'}`);
    if (!listening) vm.stop(`stopped by ${sig}`);
    else setTimeout(() => vm.stop(`stopped by ${sig}: the guest did not power off within ${grace} s`), grace * 1000).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onSignal);

  try {
    const exit = await vm.run();
    console.close();
    if (quitting) return 0;
    if (signalled && exit.reason === 'stopped') {
      log(exit.message);
      return SIGNAL_STATUS[signalled] ?? 143;
    }
    if (exit.code !== 0 || exit.reason !== 'poweroff') log(exit.message);
    return exit.code;
  } catch (e) {
    console.close();
    log((e as Error).message);
    return EXIT_VMM_ERROR;
  }
}
