// The tsvm command line: dispatches subcommands and turns expected errors into one line on
// stderr and exit status 1 (never a stack trace for a user's mistake).
import { readFileSync } from 'node:fs';
import { BootError } from '../boot/boot-plan.js';
import { ConfigError } from '../vmm/vm-config.js';
import { KvmUnavailableError } from '../accel/kvm/kvm-system.js';
import { GuestMemoryError } from '../memory/guest-memory.js';
import { runCommand } from './run-command.js';
import { MAIN_USAGE } from './usage.js';

const USER_ERRORS = [BootError, ConfigError, KvmUnavailableError, GuestMemoryError];

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function dispatch(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'run':
      return runCommand(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(MAIN_USAGE);
      return cmd === undefined ? 1 : 0;
    case 'version':
    case '--version':
      process.stdout.write(`tsvm ${version()}\n`);
      return 0;
    default:
      throw new ConfigError(`unknown command "${cmd}" (commands: run, help, version)`);
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
