// The tsvm command line: dispatches subcommands and turns expected errors into one line on
// stderr and exit status 1 (never a stack trace for a user's mistake).
import { BootError } from '../boot/boot-plan.js';
import { ConfigError } from '../vmm/vm-config.js';
import { KvmUnavailableError } from '../accel/kvm/kvm-system.js';
import { GuestMemoryError } from '../memory/guest-memory.js';
import { runCommand } from './run-command.js';
import { tsvmVersion } from '../paths.js';
import { killCommand, pauseCommand, psCommand, resumeCommand, stopCommand } from './manage-commands.js';
import { consoleCommand } from './console-command.js';
import { imgCommand } from './img-command.js';
import { BlockError } from '../block/errors.js';
import { TapError } from '../net/tap.js';
import { MAIN_USAGE } from './usage.js';

const USER_ERRORS = [BootError, ConfigError, KvmUnavailableError, GuestMemoryError, BlockError, TapError];

async function dispatch(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'run':
      return runCommand(rest);
    case 'ps':
      return psCommand(rest);
    case 'stop':
      return stopCommand(rest);
    case 'kill':
      return killCommand(rest);
    case 'pause':
      return pauseCommand(rest);
    case 'resume':
      return resumeCommand(rest);
    case 'console':
      return consoleCommand(rest);
    case 'img':
      return imgCommand(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(MAIN_USAGE);
      return cmd === undefined ? 1 : 0;
    case 'version':
    case '--version':
      process.stdout.write(`tsvm ${tsvmVersion()}\n`);
      return 0;
    default:
      throw new ConfigError(`unknown command "${cmd}" (commands: run, ps, stop, kill, pause, resume, console, img, help, version)`);
  }
}

export async function main(argv: string[]): Promise<void> {
  let code: number;
  try {
    code = await dispatch(argv);
  } catch (e) {
    if (USER_ERRORS.some((cls) => e instanceof cls)) {
      process.stderr.write(`tsvm: ${(e as Error).message}\n`);
      code = 1;
    } else {
      process.stderr.write(`tsvm: internal error: ${(e as Error).stack ?? e}\n`);
      code = 1;
    }
  }
  // Let stdout drain, then exit even if a stray handle (stdin in raw mode, a timer) is left.
  process.stdout.write('', () => process.exit(code));
}
