// The runtime directory: how VMs, each an ordinary process, find each other.
//
// Root: $TSVM_RUNTIME_DIR if set; else $XDG_RUNTIME_DIR/tsvm; else /run/tsvm for root; else
// $TMPDIR/tsvm-UID. One directory per VM, named after it:
//
//   ROOT/NAME/info.json     pid, process start time, name, start date, socket paths (written first)
//   ROOT/NAME/config.json   the configuration it boots with (docs/openapi.json FullVmConfiguration)
//   ROOT/NAME/api.sock      the HTTP API (unless --api-sock put it elsewhere; info.json says where)
//   ROOT/NAME/console.sock  the serial console (raw bytes both ways; see runtime-console.ts)
//   ROOT/NAME/log           the VMM's messages when it runs detached
//
// Names are unique: a VM fills a private directory (ROOT/.new-...) and renames it to ROOT/NAME;
// rename(2) of a directory fails if the target exists, so two VMs can never both own a name.
// A directory whose process is gone (killed with SIGKILL, say) is stale: its pid is not alive,
// is a zombie, or belongs to another process now (the start time in /proc/PID/stat differs).
// Whoever finds a stale directory (a new VM wanting the name, `tsvm ps`) renames it away
// atomically and deletes it; a live VM's directory is never touched by anyone but its owner.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConfigError } from './vm-config.js';

export interface RuntimeInfo {
  name: string;
  pid: number;
  /** Field 22 of /proc/PID/stat (clock ticks after boot): tells a reused pid from ours. */
  procStart: string;
  startedAt: string;
  apiSocket: string;
  consoleSocket: string;
}

export function runtimeRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TSVM_RUNTIME_DIR) return env.TSVM_RUNTIME_DIR;
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'tsvm');
  if (process.getuid?.() === 0) return '/run/tsvm';
  return join(tmpdir(), `tsvm-${process.getuid?.() ?? 'user'}`);
}

/** /proc/PID/stat's state and start time, or undefined when there is no such process. */
function procStat(pid: number): { state: string; start: string } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], start: rest[19] };
  } catch {
    return undefined;
  }
}

export function processStartTime(pid: number): string {
  return procStat(pid)?.start ?? '';
}

/** Whether the process that wrote `info` is still running (not a zombie, not a reused pid). */
export function isAlive(info: Pick<RuntimeInfo, 'pid' | 'procStart'>): boolean {
  if (!Number.isInteger(info.pid) || info.pid <= 0) return false;
  try {
    process.kill(info.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const st = procStat(info.pid);
  if (!st) return existsSync('/proc/self') ? false : true; // no /proc: trust kill(0)
  if (st.state === 'Z' || st.state === 'X') return false;
  return !info.procStart || st.start === info.procStart;
}

export function readInfo(dir: string): RuntimeInfo | undefined {
  try {
    const info = JSON.parse(readFileSync(join(dir, 'info.json'), 'utf8')) as RuntimeInfo;
    return typeof info.pid === 'number' ? info : undefined;
  } catch {
    return undefined;
  }
}

/** Removes a directory by first renaming it to a private name (atomic: only one remover wins). */
function removeAtomically(root: string, dir: string): void {
  const grave = join(root, `.stale-${randomBytes(6).toString('hex')}`);
  try {
    renameSync(dir, grave);
  } catch {
    return; // gone already, or someone else took it
  }
  rmSync(grave, { recursive: true, force: true });
}

const UNIX_PATH_MAX = 107;

/** mkdir -p, one level at a time (Node's recursive mkdir can spin forever where mkdir fails
 *  with ENOENT for another reason than a missing parent, e.g. under /proc). */
function makeDirs(dir: string): void {
  const abs = resolve(dir);
  const parent = dirname(abs);
  if (parent !== abs && !existsSync(parent)) makeDirs(parent);
  try {
    mkdirSync(abs, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

export class RuntimeDir {
  private removed = false;
  private constructor(readonly root: string, readonly path: string, readonly info: RuntimeInfo) {}

  get apiSocket(): string { return this.info.apiSocket; }
  get consoleSocket(): string { return this.info.consoleSocket; }
  get logFile(): string { return join(this.path, 'log'); }
  get configFile(): string { return join(this.path, 'config.json'); }

  /**
   * Takes the name for this process: creates ROOT/NAME, replacing a stale directory, or throws a
   * ConfigError if a live VM has the name. `apiSocket` overrides where the API socket will be.
   */
  static claim(name: string, opts: { apiSocket?: string; root?: string } = {}): RuntimeDir {
    const root = opts.root ?? runtimeRoot();
    makeDirs(root);
    const dir = join(root, name);
    const info: RuntimeInfo = {
      name,
      pid: process.pid,
      procStart: processStartTime(process.pid),
      startedAt: new Date().toISOString(),
      apiSocket: opts.apiSocket ?? join(dir, 'api.sock'),
      consoleSocket: join(dir, 'console.sock'),
    };
    for (const p of [info.apiSocket, info.consoleSocket]) {
      if (Buffer.byteLength(p) > UNIX_PATH_MAX) throw new ConfigError(`the socket path ${p} is longer than ${UNIX_PATH_MAX} bytes; use a shorter --name or TSVM_RUNTIME_DIR`);
    }
    const tmp = join(root, `.new-${process.pid}-${randomBytes(4).toString('hex')}`);
    mkdirSync(tmp, { mode: 0o700 });
    try {
      writeFileSync(join(tmp, 'info.json'), `${JSON.stringify(info, null, 2)}\n`);
      for (let attempt = 0; ; attempt++) {
        try {
          renameSync(tmp, dir);
          return new RuntimeDir(root, dir, info);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if ((code !== 'EEXIST' && code !== 'ENOTEMPTY') || attempt >= 5) throw e;
        }
        const other = readInfo(dir);
        if (other && isAlive(other)) {
          throw new ConfigError(`a VM named "${name}" is already running (pid ${other.pid}); choose another --name, or stop it with: tsvm stop ${name}`);
        }
        removeAtomically(root, dir);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  writeConfig(doc: unknown): void {
    if (this.removed) return;
    const tmp = `${this.configFile}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(doc, null, 2)}\n`);
    renameSync(tmp, this.configFile);
  }

  /** Deletes the directory (sockets included) if it is still ours. Synchronous: safe in 'exit'. */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    const now = readInfo(this.path);
    if (now && now.pid !== process.pid) return;
    removeAtomically(this.root, this.path);
  }
}

export interface RuntimeEntry {
  name: string;
  dir: string;
  info?: RuntimeInfo;
  /** 'live': its process runs; 'gone': it was stale and has just been cleaned. */
  status: 'live' | 'gone';
}

/** Every VM directory under the root, live first; stale ones are removed and reported as 'gone'. */
export function listRuntime(root = runtimeRoot()): RuntimeEntry[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const out: RuntimeEntry[] = [];
  for (const name of names.sort()) {
    const dir = join(root, name);
    if (name.startsWith('.')) {
      // Leftovers of a VM killed while claiming its name, or of an interrupted cleanup.
      const m = /^\.new-(\d+)-/.exec(name);
      const owner = m ? Number(m[1]) : 0;
      let old = false;
      try { old = Date.now() - statSync(dir).mtimeMs > 60_000; } catch { /* gone */ }
      if ((m && !isAlive({ pid: owner, procStart: '' })) || (!m && old)) rmSync(dir, { recursive: true, force: true });
      continue;
    }
    try {
      if (!statSync(dir).isDirectory()) continue; // not ours (e.g. an --api-sock placed here)
    } catch {
      continue;
    }
    const info = readInfo(dir);
    if (info && isAlive(info)) {
      out.push({ name, dir, info, status: 'live' });
    } else {
      removeAtomically(root, dir);
      out.push({ name, dir, info, status: 'gone' });
    }
  }
  return out;
}

/** The live VM called `name`, or a ConfigError that says there is none. */
export function findVm(name: string, root = runtimeRoot()): RuntimeEntry & { info: RuntimeInfo } {
  const dir = join(root, name);
  const info = readInfo(dir);
  if (!info || !existsSync(dir)) throw new ConfigError(`no VM named "${name}" (tsvm ps lists them)`);
  if (!isAlive(info)) {
    removeAtomically(root, dir);
    throw new ConfigError(`no VM named "${name}": its process (pid ${info.pid}) is gone; removed its stale runtime directory`);
  }
  return { name, dir, info, status: 'live' };
}
