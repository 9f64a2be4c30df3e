// `npm run guests`: fetches the default Linux guest from Debian's archive and builds its
// initramfs, into the tsvm cache (nothing in the repository):
//
//   <cache>/guests/default/manifest.json   {kernel, initrd, kernelVersion, builtAt, ...}
//   <cache>/guests/default/initrd-<hash>.cpio.gz
//   <cache>/debs/linux-image-<ver>-cloud-amd64_<debver>/boot/vmlinuz-<ver>   (the kernel)
//
// `--kernel generic` does the same with Debian's generic kernel (linux-image-amd64) into
// <cache>/guests/generic/. Idempotent: when the manifest matches the current inputs (kernel and
// busybox versions, module list, /init) nothing is rebuilt and the call takes well under a
// second. Library users call ensureDefaultGuest().

import { createHash } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheRoot, fetchDebianPackage, candidateVersions, log, resolveDependsName, step } from './lib/debian.js';
import { buildInitramfs, initScript, VIRTIO_MODULES } from './lib/initramfs.js';

export type GuestFlavor = 'cloud' | 'generic';

export interface GuestManifest {
  flavor: GuestFlavor;
  /** The bzImage (`boot/vmlinuz-<kernelVersion>` of the extracted Debian package). */
  kernel: string;
  /** The gzip-compressed newc initramfs. */
  initrd: string;
  /** `uname -r` of the kernel, e.g. "6.1.0-50-cloud-amd64". */
  kernelVersion: string;
  /** The Debian package the kernel came from, and its version. */
  kernelPackage: string;
  kernelPackageVersion: string;
  busyboxVersion: string;
  /** Module files in the initramfs, in load order (relative to /lib/modules). */
  modules: string[];
  /** A kernel command line that suits this guest on tsvm (serial console). */
  cmdline: string;
  /** ISO 8601 time of the build. */
  builtAt: string;
  /** Hash of every input; a different value means the guest must be rebuilt. */
  inputsHash: string;
}

export interface EnsureGuestOptions {
  flavor?: GuestFlavor;
  /** Rebuild even when the manifest is current. */
  force?: boolean;
}

const META_PACKAGE: Record<GuestFlavor, string> = {
  cloud: 'linux-image-cloud-amd64',
  generic: 'linux-image-amd64',
};

/** Bumped when the way the guest is built changes in a way the other inputs do not show. */
const BUILDER_VERSION = 1;

export function guestDir(flavor: GuestFlavor): string {
  return join(cacheRoot(), 'guests', flavor === 'cloud' ? 'default' : flavor);
}

export function manifestPath(flavor: GuestFlavor): string {
  return join(guestDir(flavor), 'manifest.json');
}

async function readManifest(flavor: GuestFlavor): Promise<GuestManifest | undefined> {
  try {
    const m = JSON.parse(await readFile(manifestPath(flavor), 'utf8')) as GuestManifest;
    if (existsSync(m.kernel) && existsSync(m.initrd)) return m;
  } catch {
    // missing or unreadable: rebuild
  }
  return undefined;
}

async function writeAtomically(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

const pending = new Map<GuestFlavor, Promise<GuestManifest>>();

/**
 * Makes sure the default Linux guest (Debian kernel + busybox initramfs with the virtio
 * modules) is in the cache and returns its manifest. Cheap when it is: a few `apt-cache`
 * queries to see whether Debian's candidate versions changed.
 */
export function ensureDefaultGuest(opts: EnsureGuestOptions = {}): Promise<GuestManifest> {
  const flavor = opts.flavor ?? 'cloud';
  if (opts.force) return build(flavor, true);
  let p = pending.get(flavor);
  if (!p) {
    p = build(flavor, false);
    pending.set(flavor, p);
    p.catch(() => pending.delete(flavor));
  }
  return p;
}

async function build(flavor: GuestFlavor, force: boolean): Promise<GuestManifest> {
  const existing = await readManifest(flavor);

  let kernelPackage: string;
  let kernelPackageVersion: string;
  let busyboxVersion: string;
  try {
    kernelPackage = await resolveDependsName(META_PACKAGE[flavor], 'linux-image-');
    const versions = await candidateVersions([kernelPackage, 'busybox-static']);
    kernelPackageVersion = versions.get(kernelPackage)!;
    busyboxVersion = versions.get('busybox-static')!;
  } catch (err) {
    // Without apt lists (and without root to fetch them) a guest built earlier still serves.
    if (existing) {
      log(`cannot ask apt for current versions (${(err as Error).message}); using the cached ${flavor} guest`);
      return existing;
    }
    throw err;
  }

  const modules = VIRTIO_MODULES;
  const inputsHash = createHash('sha256')
    .update(JSON.stringify({ BUILDER_VERSION, kernelPackage, kernelPackageVersion, busyboxVersion, modules, init: initScript() }))
    .digest('hex');
  if (existing && existing.inputsHash === inputsHash && !force) return existing;
  try {
    return await buildNew(flavor, { kernelPackage, kernelPackageVersion, busyboxVersion, modules, inputsHash });
  } catch (err) {
    // E.g. Debian has a newer kernel but the archive cannot be reached right now.
    if (existing && !force) {
      log(`could not build the ${flavor} guest anew (${(err as Error).message}); using the cached one`);
      return existing;
    }
    throw err;
  }
}

interface BuildInputs {
  kernelPackage: string;
  kernelPackageVersion: string;
  busyboxVersion: string;
  modules: string[];
  inputsHash: string;
}

async function buildNew(flavor: GuestFlavor, inputs: BuildInputs): Promise<GuestManifest> {
  const { kernelPackage, kernelPackageVersion, busyboxVersion, modules, inputsHash } = inputs;
  const t0 = performance.now();
  log(`building the ${flavor} guest: ${kernelPackage} ${kernelPackageVersion}, busybox-static ${busyboxVersion}`);
  const [kernelDir, busyboxDir] = await Promise.all([
    fetchDebianPackage(kernelPackage, { version: kernelPackageVersion }),
    fetchDebianPackage('busybox-static', { version: busyboxVersion }),
  ]);

  const moduleVersions = await readdir(join(kernelDir, 'lib/modules'));
  if (moduleVersions.length !== 1) throw new Error(`expected one kernel in ${kernelDir}/lib/modules, found ${moduleVersions.join(', ')}`);
  const kernelVersion = moduleVersions[0];
  const kernel = join(kernelDir, 'boot', `vmlinuz-${kernelVersion}`);
  if (!existsSync(kernel)) throw new Error(`no kernel image at ${kernel}`);

  const initramfs = await step('building the initramfs', () =>
    buildInitramfs({
      busybox: join(busyboxDir, 'bin/busybox'),
      modules: { dir: join(kernelDir, 'lib/modules', kernelVersion), version: kernelVersion, names: modules },
    }),
  );
  const dir = guestDir(flavor);
  await mkdir(dir, { recursive: true });
  const initrdHash = createHash('sha256').update(initramfs.gz).digest('hex').slice(0, 16);
  const initrd = join(dir, `initrd-${initrdHash}.cpio.gz`);
  if (!existsSync(initrd)) await writeAtomically(initrd, initramfs.gz);
  log(
    `initramfs: ${(initramfs.gz.length / 1e6).toFixed(1)} MB gzip (${(initramfs.cpio.length / 1e6).toFixed(1)} MB cpio), ` +
      `${initramfs.applets.length} applets, ${initramfs.modules.length} modules`,
  );

  const manifest: GuestManifest = {
    flavor,
    kernel,
    initrd,
    kernelVersion,
    kernelPackage,
    kernelPackageVersion,
    busyboxVersion,
    modules: initramfs.modules,
    cmdline: 'console=ttyS0 panic=-1',
    builtAt: new Date().toISOString(),
    inputsHash,
  };
  await writeAtomically(manifestPath(flavor), JSON.stringify(manifest, null, 2) + '\n');
  log(`${flavor} guest ready in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${manifestPath(flavor)}`);
  return manifest;
}

function usage(): never {
  process.stderr.write(
    'usage: npm run guests -- [--kernel cloud|generic|all] [--force]\n' +
      '  Fetches a Debian kernel and busybox-static and builds the initramfs into the tsvm cache\n' +
      `  (${cacheRoot()}; set TSVM_CACHE to move it). Prints the manifest path(s).\n`,
  );
  process.exit(2);
}

async function main(argv: string[]): Promise<void> {
  let flavors: GuestFlavor[] = ['cloud'];
  let force = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--force') force = true;
    else if (a === '--kernel' || a.startsWith('--kernel=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === 'cloud' || v === 'default') flavors = ['cloud'];
      else if (v === 'generic') flavors = ['generic'];
      else if (v === 'all') flavors = ['cloud', 'generic'];
      else usage();
    } else usage();
  }
  for (const flavor of flavors) {
    const m = await ensureDefaultGuest({ flavor, force });
    process.stdout.write(`${manifestPath(flavor)}\n`);
    log(`${flavor}: kernel ${m.kernelVersion} (${m.kernel}), initrd ${m.initrd}`);
  }
}

function isMain(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`build-guests: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
