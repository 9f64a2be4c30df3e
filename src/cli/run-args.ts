// `tsvm run` flags (and --config FILE) → VmConfig. Unknown options and bad values become one-line
// errors. A config file is applied first and flags override it, so the two can be mixed; the
// same VM described either way gives the same VmConfig (test/mgmt/config-file.test.ts).
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../vmm/config-file.js';
import { CONSOLE_KINDS, ConfigError, defaultAppend, defaultConfig, parseMemorySize, setConsole, validateConfig, type ConsoleKind, type DiskConfig, type NetConfig, type VmConfig } from '../vmm/vm-config.js';

export const RUN_OPTIONS = {
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
  console: { type: 'string' },
  testdev: { type: 'boolean' },
  grace: { type: 'string' },
  disk: { type: 'string', multiple: true },
  net: { type: 'string', multiple: true },
  config: { type: 'string' },
  'api-sock': { type: 'string' },
  // Firecracker's spellings, for scripts written for it.
  'config-file': { type: 'string' },
  id: { type: 'string' },
  detach: { type: 'boolean', short: 'd' },
  help: { type: 'boolean', short: 'h' },
} as const;

export type RunArgs =
  | { help: true }
  | {
    help: false;
    /** Validated when `bootable`; otherwise a draft that waits for the API (--api-sock, no boot source). */
    config: VmConfig;
    bootable: boolean;
    apiSocket?: string;
    detach: boolean;
  };

/** Runs a parseArgs call, turning its errors ("Unknown option '--x'. ...") into our one-line style. */
export function withArgErrors<T>(command: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    const err = e as Error & { code?: string };
    const m = /'([^']+)'/.exec(err.message);
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new ConfigError(`unknown option ${m?.[1] ?? ''} (see tsvm ${command} --help)`);
    if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new ConfigError(`unexpected argument ${m?.[1] ?? ''} (options take the form --name value; see tsvm ${command} --help)`);
    if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw new ConfigError(`${err.message.split('\n')[0]} (see tsvm ${command} --help)`);
    throw new ConfigError(err.message);
  }
}

function integer(flag: string, text: string): number {
  if (!/^\d+$/.test(text)) throw new ConfigError(`${flag} "${text}" is not a whole number`);
  return Number(text);
}

/** "PATH[,ro][,root][,id=ID][,format=raw|qcow2]" */
export function parseDisk(text: string, index: number): DiskConfig {
  const [path, ...opts] = text.split(',');
  if (!path) throw new ConfigError(`--disk "${text}": give the image path first, e.g. --disk disk.img,ro`);
  if (!existsSync(path)) throw new ConfigError(`--disk ${path}: no such file`);
  const d: DiskConfig = { id: `disk${index}`, path, readonly: false };
  for (const o of opts) {
    const [k, v] = o.split('=', 2);
    if (k === 'ro' && v === undefined) d.readonly = true;
    else if (k === 'root' && v === undefined) d.root = true;
    else if (k === 'id' && v) d.id = v;
    else if (k === 'format' && (v === 'raw' || v === 'qcow2')) d.format = v;
    else throw new ConfigError(`--disk "${text}": "${o}" is not understood (use ro, root, id=ID, format=raw or format=qcow2)`);
  }
  return d;
}

/** "TAP[,mac=MAC][,id=ID]" */
export function parseNet(text: string, index: number): NetConfig {
  const [hostDevName, ...opts] = text.split(',');
  if (!hostDevName) throw new ConfigError(`--net "${text}": give the TAP device first, e.g. --net tap0`);
  const n: NetConfig = { id: `net${index}`, hostDevName };
  for (const o of opts) {
    const [k, v] = o.split('=', 2);
    if (k === 'mac' && v) n.mac = v.toLowerCase();
    else if (k === 'id' && v) n.id = v;
    else throw new ConfigError(`--net "${text}": "${o}" is not understood (use mac=MAC or id=ID)`);
  }
  return n;
}

export function parseRunArgs(argv: string[]): RunArgs {
  const { values: v } = withArgErrors('run', () => parseArgs({ args: argv, options: RUN_OPTIONS, strict: true, allowPositionals: false }));
  if (v.help) return { help: true };
  if (v.config !== undefined && v['config-file'] !== undefined) throw new ConfigError('--config and --config-file are the same option: give one');
  if (v.name !== undefined && v.id !== undefined) throw new ConfigError('--name and --id are the same option: give one');
  const configFile = v.config ?? v['config-file'];
  const c = configFile !== undefined ? loadConfigFile(configFile) : defaultConfig();
  if (v.kernel !== undefined || v.firmware !== undefined) {
    // A boot source on the command line replaces the file's.
    delete c.kernel;
    delete c.initrd;
    delete c.firmware;
  }
  if (v.kernel !== undefined) c.kernel = v.kernel;
  if (v.initrd !== undefined) c.initrd = v.initrd;
  if (v.firmware !== undefined) c.firmware = v.firmware;
  if (v.console !== undefined) {
    if (!CONSOLE_KINDS.includes(v.console as ConsoleKind)) throw new ConfigError(`--console "${v.console}" is unknown: use serial or virtio`);
    // An --append given here is the user's: only a default command line follows the console.
    if (v.append === undefined) setConsole(c, v.console as ConsoleKind);
    else c.console = v.console as ConsoleKind;
  }
  if (v.append !== undefined) c.append = v.append;
  else if (v.kernel !== undefined) c.append = defaultAppend(c.console);
  else if (v.firmware !== undefined) c.append = '';
  if (v.memory !== undefined) c.memoryBytes = parseMemorySize(v.memory);
  if (v.cpus !== undefined) c.cpus = integer('--cpus', v.cpus);
  if (v.accel !== undefined) c.accel = v.accel as VmConfig['accel'];
  if (v.name !== undefined) c.name = v.name;
  if (v.id !== undefined) c.name = v.id;
  if (v['boot-mode'] !== undefined) c.bootMode = v['boot-mode'] as VmConfig['bootMode'];
  if (v['no-reboot']) c.noReboot = true;
  if (v['no-irqchip']) c.irqchip = false;
  if (v.testdev) c.testdev = true;
  if (v.grace !== undefined) c.shutdownGraceSeconds = integer('--grace', v.grace);
  if (v.disk) c.disks = v.disk.map((d, i) => parseDisk(d, i));
  if (v.net) c.nets = v.net.map((n, i) => parseNet(n, i));
  const apiSocket = v['api-sock'];
  const bootable = c.kernel !== undefined || c.firmware !== undefined;
  if (!bootable && apiSocket !== undefined) {
    // Firecracker-style: no guest yet, it comes through the API. Check everything else now.
    validateConfig({ ...c, firmware: c.initrd ? undefined : '(from the API)', kernel: c.initrd ? '(from the API)' : undefined });
    return { help: false, config: c, bootable, apiSocket, detach: v.detach === true };
  }
  const r: RunArgs = { help: false, config: validateConfig(c), bootable: true, detach: v.detach === true };
  if (apiSocket !== undefined) r.apiSocket = apiSocket;
  return r;
}
