// `tsvm run` flags → VmConfig. Unknown options and bad values become one-line errors.
import { parseArgs } from 'node:util';
import { ConfigError, defaultConfig, parseMemorySize, validateConfig, type VmConfig } from '../vmm/vm-config.js';

const OPTIONS = {
  kernel: { type: 'string' },
  initrd: { type: 'string' },
  append: { type: 'string' },
  firmware: { type: 'string' },
  memory: { type: 'string', short: 'm' },
  cpus: { type: 'string' },
  accel: { type: 'string' },
  name: { type: 'string' },
  'boot-mode': { type: 'string' },
  'no-reboot': { type: 'boolean' },
  'no-irqchip': { type: 'boolean' },
  testdev: { type: 'boolean' },
  grace: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export type RunArgs = { help: true } | { help: false; config: VmConfig };

/** Turns Node's parseArgs errors ("Unknown option '--x'. ...") into our one-line style. */
function parse(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false });
  } catch (e) {
    const err = e as Error & { code?: string };
    const m = /'([^']+)'/.exec(err.message);
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new ConfigError(`unknown option ${m?.[1] ?? ''} (see tsvm run --help)`);
    if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new ConfigError(`unexpected argument ${m?.[1] ?? ''} (options take the form --name value; see tsvm run --help)`);
    if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw new ConfigError(`${err.message.split('\n')[0]} (see tsvm run --help)`);
    throw new ConfigError(err.message);
  }
}

function integer(flag: string, text: string): number {
  if (!/^\d+$/.test(text)) throw new ConfigError(`${flag} "${text}" is not a whole number`);
  return Number(text);
}

export function parseRunArgs(argv: string[]): RunArgs {
  const { values: v } = parse(argv);
  if (v.help) return { help: true };
  const c = defaultConfig();
  if (v.kernel !== undefined) c.kernel = v.kernel;
  if (v.initrd !== undefined) c.initrd = v.initrd;
  if (v.firmware !== undefined) c.firmware = v.firmware;
  c.append = v.append ?? (v.kernel !== undefined ? 'console=ttyS0' : '');
  if (v.memory !== undefined) c.memoryBytes = parseMemorySize(v.memory);
  if (v.cpus !== undefined) c.cpus = integer('--cpus', v.cpus);
  if (v.accel !== undefined) c.accel = v.accel as VmConfig['accel'];
  if (v.name !== undefined) c.name = v.name;
  if (v['boot-mode'] !== undefined) c.bootMode = v['boot-mode'] as VmConfig['bootMode'];
  if (v['no-reboot']) c.noReboot = true;
  if (v['no-irqchip']) c.irqchip = false;
  if (v.testdev) c.testdev = true;
  if (v.grace !== undefined) c.shutdownGraceSeconds = integer('--grace', v.grace);
  return { help: false, config: validateConfig(c) };
}
