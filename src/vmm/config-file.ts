// The VM configuration as a document: what `tsvm run --config vm.json` reads, what `GET /vm/config`
// returns and what the API's PUTs take piece by piece. Its shape is Firecracker's (boot-source,
// machine-config, drives, network-interfaces) plus a "tsvm" section and a few tsvm fields, all
// described in docs/openapi.json (schema FullVmConfiguration). Every path into a VmConfig goes
// through the apply* functions here, so the API, the file and the flags build the same object.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { apiSchemas } from '../api/openapi.js';
import { SchemaError } from '../api/json-schema.js';
import { MiB } from '../memory/guest-memory.js';
import { ConfigError, defaultAppend, defaultConfig, setConsole, validateConfig, type ConsoleKind, type DiskConfig, type NetConfig, type VmConfig } from './vm-config.js';

export interface BootSourceDoc {
  kernel_image_path?: string;
  initrd_path?: string;
  boot_args?: string;
  firmware_path?: string;
  boot_mode?: VmConfig['bootMode'];
}

export interface MachineConfigDoc {
  vcpu_count?: number;
  mem_size_mib?: number;
  smt?: boolean;
  track_dirty_pages?: boolean;
  huge_pages?: 'None';
  cpu_template?: 'None';
  accel?: VmConfig['accel'];
  irqchip?: boolean;
  no_reboot?: boolean;
  testdev?: boolean;
  console?: ConsoleKind;
}

export interface DriveDoc {
  drive_id: string;
  path_on_host: string;
  is_root_device: boolean;
  is_read_only?: boolean;
  format?: 'raw' | 'qcow2';
}

export interface NetworkInterfaceDoc {
  iface_id: string;
  host_dev_name: string;
  guest_mac?: string;
}

export interface TsvmSettingsDoc {
  name?: string;
  shutdown_grace_s?: number;
}

export interface VmConfigDocument {
  'boot-source'?: BootSourceDoc;
  'machine-config'?: MachineConfigDoc;
  drives?: DriveDoc[];
  'network-interfaces'?: NetworkInterfaceDoc[];
  tsvm?: TsvmSettingsDoc;
}

/** Checks `value` against the named schema of docs/openapi.json; a ConfigError names the field. */
export function checkSchema(value: unknown, schema: string, prefix = ''): void {
  try {
    apiSchemas().validate(value, schema, prefix);
  } catch (e) {
    if (e instanceof SchemaError) throw new ConfigError(e.message);
    throw e;
  }
}

export interface ApplyOptions {
  /** Check that the files named exist now (the API and config files do; flags are checked at boot). */
  checkFiles?: boolean;
  /** Relative paths are resolved against this directory (a config file's own directory). */
  baseDir?: string;
  /** How fields are named in errors: 'boot-source.kernel_image_path' (file) or 'kernel_image_path' (API). */
  prefix?: string;
}

function path(p: string, opts: ApplyOptions): string {
  return opts.baseDir && !isAbsolute(p) ? resolve(opts.baseDir, p) : p;
}

function field(name: string, opts: ApplyOptions): string {
  return opts.prefix ? `${opts.prefix}.${name}` : name;
}

function mustExist(p: string, name: string, opts: ApplyOptions, what = 'file'): void {
  if (!opts.checkFiles) return;
  if (!existsSync(p)) throw new ConfigError(`${field(name, opts)}: ${p}: no such ${what}`);
  const st = statSync(p);
  if (!st.isFile() && !st.isBlockDevice()) throw new ConfigError(`${field(name, opts)}: ${p}: not a regular file or block device`);
}

/** boot-source: replaces the boot source (as Firecracker's PUT does). */
export function applyBootSource(c: VmConfig, b: BootSourceDoc, opts: ApplyOptions = {}): void {
  if (b.kernel_image_path !== undefined && b.firmware_path !== undefined) {
    throw new ConfigError(`${field('kernel_image_path', opts)} and ${field('firmware_path', opts)} are exclusive: a firmware boots the guest itself`);
  }
  if (b.kernel_image_path === undefined && b.firmware_path === undefined) {
    throw new ConfigError(`missing field ${field('kernel_image_path', opts)} (or tsvm's ${field('firmware_path', opts)})`);
  }
  if (b.initrd_path !== undefined && b.kernel_image_path === undefined) throw new ConfigError(`${field('initrd_path', opts)} needs ${field('kernel_image_path', opts)}`);
  const kernel = b.kernel_image_path !== undefined ? path(b.kernel_image_path, opts) : undefined;
  const initrd = b.initrd_path !== undefined ? path(b.initrd_path, opts) : undefined;
  const firmware = b.firmware_path !== undefined ? path(b.firmware_path, opts) : undefined;
  if (kernel) mustExist(kernel, 'kernel_image_path', opts);
  if (initrd) mustExist(initrd, 'initrd_path', opts);
  if (firmware) mustExist(firmware, 'firmware_path', opts);
  c.kernel = kernel;
  c.initrd = initrd;
  c.firmware = firmware;
  if (c.kernel === undefined) delete c.kernel;
  if (c.initrd === undefined) delete c.initrd;
  if (c.firmware === undefined) delete c.firmware;
  c.append = b.boot_args ?? (kernel !== undefined ? defaultAppend(c.console) : '');
  c.bootMode = b.boot_mode ?? 'elf';
}

/** machine-config: `replace` (PUT) resets the fields left out to their defaults; otherwise (PATCH, files) they are kept. */
export function applyMachineConfig(c: VmConfig, m: MachineConfigDoc, opts: ApplyOptions & { replace?: boolean } = {}): void {
  if (m.smt === true) throw new ConfigError(`${field('smt', opts)}: tsvm does not support SMT; use false`);
  if (m.track_dirty_pages === true) throw new ConfigError(`${field('track_dirty_pages', opts)}: tsvm does not track dirty pages (no snapshots yet); use false`);
  const d = defaultConfig();
  const pick = <T>(v: T | undefined, current: T, dflt: T): T => (v !== undefined ? v : opts.replace ? dflt : current);
  c.cpus = pick(m.vcpu_count, c.cpus, d.cpus);
  c.memoryBytes = pick(m.mem_size_mib !== undefined ? m.mem_size_mib * MiB : undefined, c.memoryBytes, d.memoryBytes);
  c.accel = pick(m.accel, c.accel, d.accel);
  c.irqchip = pick(m.irqchip, c.irqchip, d.irqchip);
  c.noReboot = pick(m.no_reboot, c.noReboot, d.noReboot);
  c.testdev = pick(m.testdev, c.testdev, d.testdev);
  setConsole(c, pick(m.console, c.console, d.console));
}

function driveToDisk(dr: DriveDoc, opts: ApplyOptions): DiskConfig {
  const p = path(dr.path_on_host, opts);
  mustExist(p, 'path_on_host', opts);
  const disk: DiskConfig = { id: dr.drive_id, path: p, readonly: dr.is_read_only ?? false };
  if (dr.format !== undefined) disk.format = dr.format;
  if (dr.is_root_device) disk.root = true;
  return disk;
}

/** drives/{id}: adds the drive or replaces the one with the same id. */
export function applyDrive(c: VmConfig, dr: DriveDoc, opts: ApplyOptions = {}): void {
  const disk = driveToDisk(dr, opts);
  const others = c.disks.filter((d) => d.id !== disk.id);
  if (disk.root && others.some((d) => d.root)) {
    throw new ConfigError(`${field('is_root_device', opts)}: drive "${others.find((d) => d.root)!.id}" is the root device already; only one can be`);
  }
  const i = c.disks.findIndex((d) => d.id === disk.id);
  if (i >= 0) c.disks[i] = disk;
  else c.disks.push(disk);
}

/** network-interfaces/{id}: adds the interface or replaces the one with the same id. */
export function applyNetworkInterface(c: VmConfig, n: NetworkInterfaceDoc): void {
  const net: NetConfig = { id: n.iface_id, hostDevName: n.host_dev_name };
  if (n.guest_mac !== undefined) net.mac = n.guest_mac.toLowerCase();
  const i = c.nets.findIndex((x) => x.id === net.id);
  if (i >= 0) c.nets[i] = net;
  else c.nets.push(net);
}

export function applyTsvmSettings(c: VmConfig, t: TsvmSettingsDoc): void {
  if (t.name !== undefined) c.name = t.name;
  if (t.shutdown_grace_s !== undefined) c.shutdownGraceSeconds = t.shutdown_grace_s;
}

/** A whole document onto `base` (defaults when not given). Not validated as a bootable whole:
 *  the caller runs validateConfig when it means to boot. */
export function applyDocument(doc: unknown, base: VmConfig = defaultConfig(), opts: ApplyOptions = {}): VmConfig {
  checkSchema(doc, 'FullVmConfiguration');
  const d = doc as VmConfigDocument;
  const c: VmConfig = { ...base, disks: [...base.disks], nets: [...base.nets] };
  if (d.tsvm) applyTsvmSettings(c, d.tsvm);
  // machine-config first: boot-source's default boot_args depend on its console.
  if (d['machine-config']) applyMachineConfig(c, d['machine-config'], { ...opts, prefix: 'machine-config' });
  if (d['boot-source']) applyBootSource(c, d['boot-source'], { ...opts, prefix: 'boot-source' });
  const driveIds = new Set<string>();
  for (const [i, dr] of (d.drives ?? []).entries()) {
    if (driveIds.has(dr.drive_id)) throw new ConfigError(`drives[${i}].drive_id: "${dr.drive_id}" is used twice`);
    driveIds.add(dr.drive_id);
    applyDrive(c, dr, { ...opts, prefix: `drives[${i}]` });
  }
  const netIds = new Set<string>();
  for (const [i, n] of (d['network-interfaces'] ?? []).entries()) {
    if (netIds.has(n.iface_id)) throw new ConfigError(`network-interfaces[${i}].iface_id: "${n.iface_id}" is used twice`);
    netIds.add(n.iface_id);
    applyNetworkInterface(c, n);
  }
  return c;
}

/** Reads a config file (JSON, the FullVmConfiguration schema) onto `base`; relative paths in it
 *  are relative to the file. Errors name the file and the field. */
export function loadConfigFile(file: string, base: VmConfig = defaultConfig()): VmConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`--config ${file}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`--config ${file}: not valid JSON: ${(e as Error).message}`);
  }
  try {
    return applyDocument(doc, base, { checkFiles: true, baseDir: dirname(resolve(file)) });
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`--config ${file}: ${e.message}`);
    throw e;
  }
}

/** The document for a config (GET /vm/config, the runtime directory's config.json). */
export function documentFromConfig(c: VmConfig): Required<Omit<VmConfigDocument, 'boot-source'>> & { 'boot-source'?: BootSourceDoc } {
  const doc: ReturnType<typeof documentFromConfig> = {
    'machine-config': machineConfigOf(c),
    drives: c.disks.map((d) => {
      const dr: DriveDoc = { drive_id: d.id, path_on_host: d.path, is_root_device: d.root === true, is_read_only: d.readonly };
      if (d.format !== undefined) dr.format = d.format;
      return dr;
    }),
    'network-interfaces': c.nets.map((n) => {
      const doc: NetworkInterfaceDoc = { iface_id: n.id, host_dev_name: n.hostDevName };
      if (n.mac !== undefined) doc.guest_mac = n.mac;
      return doc;
    }),
    tsvm: { name: c.name, shutdown_grace_s: c.shutdownGraceSeconds },
  };
  if (c.kernel !== undefined || c.firmware !== undefined) {
    const b: BootSourceDoc = {};
    if (c.kernel !== undefined) b.kernel_image_path = c.kernel;
    if (c.initrd !== undefined) b.initrd_path = c.initrd;
    if (c.firmware !== undefined) b.firmware_path = c.firmware;
    b.boot_args = c.append;
    b.boot_mode = c.bootMode;
    doc['boot-source'] = b;
  }
  return doc;
}

export function machineConfigOf(c: VmConfig): Required<MachineConfigDoc> {
  return {
    vcpu_count: c.cpus,
    mem_size_mib: Math.floor(c.memoryBytes / MiB),
    smt: false,
    track_dirty_pages: false,
    huge_pages: 'None',
    cpu_template: 'None',
    accel: c.accel,
    irqchip: c.irqchip,
    no_reboot: c.noReboot,
    testdev: c.testdev,
    console: c.console,
  };
}

/** A document that must boot as it is (e.g. `tsvm run --config` with nothing else). */
export function bootableConfig(doc: unknown, opts: ApplyOptions = {}): VmConfig {
  return validateConfig(applyDocument(doc, defaultConfig(), opts));
}
