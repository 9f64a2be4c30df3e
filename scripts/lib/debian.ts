// Debian packages as build inputs: download a package from Debian's archive with the host's
// own apt (`apt-get download`, no installation), unpack it with `dpkg-deb -x` into the tsvm
// cache, and hand back the directory. Nothing is installed system-wide and nothing lands in
// the repository.
//
// Layout under the cache root (`$TSVM_CACHE`, else `${XDG_CACHE_HOME:-$HOME/.cache}/tsvm`):
//   debs/<name>_<version>.deb    the package as downloaded
//   debs/<name>_<version>/       its files (`dpkg-deb -x`), e.g. debs/nasm_2.16.01-1/usr/bin/nasm
// A ':' (epoch) in the version is written as "%3a", as apt names its .deb files.
//
// Concurrency: two processes (e.g. two test files) may ask for the same package at once. Each
// downloads and unpacks into its own temporary directory under debs/ and then renames the
// result into place; rename(2) of a directory onto an existing non-empty one fails, so the
// loser simply throws its copy away and uses the winner's. No lock files to go stale.
//
// Fresh machines may have no apt lists. When apt cannot find a package we run `apt-get update`
// once (only as root; otherwise we fail with a message telling the user to run it) and retry.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The tsvm cache root: `$TSVM_CACHE`, else `${XDG_CACHE_HOME:-$HOME/.cache}/tsvm`. */
export function cacheRoot(): string {
  const explicit = process.env.TSVM_CACHE;
  if (explicit) return explicit;
  const xdg = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(xdg, 'tsvm');
}

/** Progress and step messages go to stderr, prefixed so that they can be told apart. */
export function log(message: string): void {
  process.stderr.write(`[tsvm] ${message}\n`);
}

/** Runs `fn`, logging `what` before and the elapsed time after. */
export async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  log(`${what} ...`);
  const result = await fn();
  log(`${what}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return result;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  cwd?: string;
  /** Copy the command's stdout/stderr lines to our stderr as they come (progress). */
  echo?: boolean;
  /** Called with each line the command writes to file descriptor 3 (apt's Status-Fd). */
  onStatusLine?: (line: string) => void;
}

function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const stdio: ('ignore' | 'pipe')[] = ['ignore', 'pipe', 'pipe'];
    if (opts.onStatusLine) stdio.push('pipe');
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio, env: { ...process.env, LC_ALL: 'C' } });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      if (opts.echo) process.stderr.write(s);
    });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
      if (opts.echo) process.stderr.write(s);
    });
    if (opts.onStatusLine) {
      let pending = '';
      const fd3 = child.stdio[3] as NodeJS.ReadableStream;
      fd3.setEncoding('utf8');
      fd3.on('data', (s: string) => {
        pending += s;
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          opts.onStatusLine!(pending.slice(0, nl));
          pending = pending.slice(nl + 1);
        }
      });
    }
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') reject(new Error(`${cmd} not found: tsvm needs Debian's apt and dpkg tools on the host`));
      else reject(err);
    });
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

let aptUpdated: Promise<void> | undefined;

/** Runs `apt-get update` at most once per process; as non-root, throws an explanatory error. */
async function aptUpdateOnce(why: string): Promise<void> {
  if (!isRoot()) {
    throw new Error(
      `${why}: apt's package lists seem to be missing or stale. ` +
        `Run \`sudo apt-get update\` once and try again (tsvm only runs it itself as root).`,
    );
  }
  if (!aptUpdated) {
    aptUpdated = step(`${why}: running apt-get update`, async () => {
      const r = await run('apt-get', ['update'], { echo: true });
      if (r.code !== 0) throw new Error(`apt-get update failed (exit ${r.code})`);
    });
  }
  await aptUpdated;
}

/** Candidate versions from one `apt-cache policy` run; packages apt does not know are absent. */
async function candidatesNoUpdate(names: string[]): Promise<Map<string, string>> {
  const r = await run('apt-cache', ['policy', ...names]);
  const out = new Map<string, string>();
  let current: string | undefined;
  for (const line of r.stdout.split('\n')) {
    const pkg = /^(\S+):$/.exec(line);
    if (pkg) current = pkg[1].replace(/:amd64$/, '');
    const m = /^\s+Candidate:\s*(\S+)/.exec(line);
    if (m && current && m[1] !== '(none)') out.set(current, m[1]);
  }
  return out;
}

async function candidateVersionNoUpdate(name: string): Promise<string | undefined> {
  return (await candidatesNoUpdate([name])).get(name);
}

/**
 * The versions `apt-get download` would fetch (one `apt-cache policy` run for all of them),
 * running `apt-get update` once if apt does not know some package.
 */
export async function candidateVersions(names: string[]): Promise<Map<string, string>> {
  let found = await candidatesNoUpdate(names);
  let missing = names.filter((n) => !found.has(n));
  if (missing.length === 0) return found;
  await aptUpdateOnce(`apt knows no candidate version of ${missing.join(', ')}`);
  found = await candidatesNoUpdate(names);
  missing = names.filter((n) => !found.has(n));
  if (missing.length > 0) throw new Error(`Debian package(s) ${missing.join(', ')} not found by apt, even after apt-get update`);
  return found;
}

/** The version `apt-get download <name>` would fetch, running `apt-get update` once if needed. */
export async function candidateVersion(name: string): Promise<string> {
  return (await candidateVersions([name])).get(name)!;
}

/** A version as it appears in file names: the epoch colon becomes "%3a" (apt does the same). */
export function versionForPath(version: string): string {
  return version.replace(/:/g, '%3a');
}

/** `<cache>/debs/<name>_<version>`: where fetchDebianPackage puts a package's files. */
export function packageDir(name: string, version: string): string {
  return join(cacheRoot(), 'debs', `${name}_${versionForPath(version)}`);
}

async function newestCachedDir(name: string): Promise<string | undefined> {
  const debs = join(cacheRoot(), 'debs');
  let names: string[];
  try {
    names = await readdir(debs);
  } catch {
    return undefined;
  }
  const prefix = `${name}_`;
  let best: { path: string; mtime: number } | undefined;
  for (const n of names) {
    if (!n.startsWith(prefix) || n.endsWith('.deb')) continue;
    // "<name>_<version>" where the version itself contains no '_'.
    if (n.slice(prefix.length).includes('_')) continue;
    const p = join(debs, n);
    const s = await stat(p);
    if (s.isDirectory() && (!best || s.mtimeMs > best.mtime)) best = { path: p, mtime: s.mtimeMs };
  }
  return best?.path;
}

const inFlight = new Map<string, Promise<string>>();

export interface FetchOptions {
  /** A specific version instead of apt's candidate. */
  version?: string;
}

/**
 * Downloads Debian package `name` (apt's candidate version unless `opts.version`) and extracts
 * its files; returns the directory holding them (`<cache>/debs/<name>_<version>/`). Cached by
 * version: a second call costs one `apt-cache policy`. If apt knows no version (lists absent)
 * but an extraction of the package is already cached, that one is used without the network.
 */
export function fetchDebianPackage(name: string, opts: FetchOptions = {}): Promise<string> {
  if (!/^[a-z0-9][a-z0-9+.-]+$/.test(name)) return Promise.reject(new Error(`not a Debian package name: ${name}`));
  const key = `${name}=${opts.version ?? ''}`;
  let p = inFlight.get(key);
  if (!p) {
    p = fetchUncached(name, opts);
    inFlight.set(key, p);
    p.catch(() => inFlight.delete(key));
  }
  return p;
}

async function fetchUncached(name: string, opts: FetchOptions): Promise<string> {
  let version = opts.version ?? (await candidateVersionNoUpdate(name));
  if (!version) {
    const cached = await newestCachedDir(name);
    if (cached) {
      log(`apt knows no version of ${name}; using the cached ${cached}`);
      return cached;
    }
    version = await candidateVersion(name);
  }
  const dir = packageDir(name, version);
  if (existsSync(dir)) return dir;

  const debs = join(cacheRoot(), 'debs');
  await mkdir(debs, { recursive: true });
  const tmp = await mkdtemp(join(debs, `.tmp-${name}-`));
  try {
    const deb = await download(name, version, tmp);
    const out = join(tmp, 'root');
    await step(`extracting ${name} ${version}`, async () => {
      const r = await run('dpkg-deb', ['-x', deb, out]);
      if (r.code !== 0) throw new Error(`dpkg-deb -x ${deb} failed (exit ${r.code}): ${r.stderr.trim()}`);
    });
    // dpkg-deb gives the directory the package's own mtime; make it the time of the fetch
    // (newestCachedDir goes by it).
    const now = new Date();
    await utimes(out, now, now);
    // Keep the .deb next to the extraction (rename over an existing copy is atomic and harmless).
    await rename(deb, join(debs, `${name}_${versionForPath(version)}.deb`));
    try {
      await rename(out, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Another process finished first: its copy is as good as ours.
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && existsSync(dir)) return dir;
      throw err;
    }
    return dir;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** `apt-get download name=version` into `dir`, with percent progress on stderr; returns the .deb. */
async function download(name: string, version: string, dir: string): Promise<string> {
  const args = ['download', '-o', 'APT::Status-Fd=3'];
  // As root apt would try to drop to the _apt user, which cannot write into our private temp
  // directory, and complain; download as root directly instead.
  if (isRoot()) args.push('-o', 'APT::Sandbox::User=root');
  args.push(`${name}=${version}`);

  const attempt = () =>
    step(`downloading ${name} ${version}`, async () => {
      let lastTenth = -1;
      return run('apt-get', args, {
        cwd: dir,
        echo: true,
        onStatusLine: (line) => {
          // "dlstatus:<item>:<percent>:<text>"
          const m = /^dlstatus:[^:]*:([0-9.]+):/.exec(line);
          if (!m) return;
          const tenth = Math.floor(Number(m[1]) / 10);
          if (tenth > lastTenth && tenth < 10) {
            lastTenth = tenth;
            log(`downloading ${name}: ${(tenth * 10).toString()}%`);
          }
        },
      });
    });

  let r = await attempt();
  if (r.code !== 0 && /Unable to locate package|Can't select|was not found|404\s+Not Found/i.test(r.stderr)) {
    await aptUpdateOnce(`apt-get download ${name}=${version} failed`);
    r = await attempt();
  }
  if (r.code !== 0) throw new Error(`apt-get download ${name}=${version} failed (exit ${r.code}): ${r.stderr.trim()}`);
  const files = (await readdir(dir)).filter((f) => f.endsWith('.deb'));
  if (files.length !== 1) throw new Error(`apt-get download ${name}: expected one .deb, found ${files.join(', ') || 'none'}`);
  return join(dir, files[0]);
}

/** The fields of `apt-cache show <name>` for apt's candidate version (the first stanza). */
export async function packageFields(name: string): Promise<Record<string, string>> {
  let r = await run('apt-cache', ['show', name]);
  if (r.code !== 0 || r.stdout.trim() === '') {
    await aptUpdateOnce(`apt-cache show ${name} found nothing`);
    r = await run('apt-cache', ['show', name]);
  }
  if (r.code !== 0 || r.stdout.trim() === '') throw new Error(`apt-cache show ${name} failed: ${r.stderr.trim()}`);
  const stanza = r.stdout.split(/\n\n/)[0];
  const fields: Record<string, string> = {};
  let current = '';
  for (const line of stanza.split('\n')) {
    if (/^\s/.test(line) && current) {
      fields[current] += '\n' + line.trim();
      continue;
    }
    const m = /^([A-Za-z0-9-]+):\s?(.*)$/.exec(line);
    if (m) {
      current = m[1];
      fields[current] = m[2];
    }
  }
  return fields;
}

/**
 * The real package behind a meta package: the name of the first `Depends` entry of `meta`
 * (or the first one starting with `prefix`), e.g. linux-image-cloud-amd64 →
 * linux-image-6.1.0-50-cloud-amd64.
 */
export async function resolveDependsName(meta: string, prefix?: string): Promise<string> {
  const fields = await packageFields(meta);
  const depends = fields['Depends'] ?? fields['Pre-Depends'];
  if (!depends) throw new Error(`Debian package ${meta} has no Depends`);
  for (const clause of depends.split(',')) {
    // "a (>= 1) | b": take the first alternative.
    const first = clause.split('|')[0].trim();
    const m = /^([a-z0-9][a-z0-9+.-]+)/.exec(first);
    if (m && (!prefix || m[1].startsWith(prefix))) return m[1];
  }
  throw new Error(`no dependency of ${meta}${prefix ? ` starting with ${prefix}` : ''} in "${depends}"`);
}

/**
 * The path of `relPath` inside Debian package `pkg`, fetched and extracted as needed:
 * `toolPath('nasm', 'usr/bin/nasm')`.
 */
export async function toolPath(pkg: string, relPath: string): Promise<string> {
  const dir = await fetchDebianPackage(pkg);
  const p = join(dir, relPath);
  if (!existsSync(p)) throw new Error(`${relPath} is not in Debian package ${pkg} (${dir})`);
  return p;
}
