// The HTTP API of one VM, on a Unix socket, shaped like Firecracker's where the two overlap
// (docs/openapi.json is the definition; docs/API.md the guide).
//
// - Bodies are JSON, checked against the document's schemas before anything else happens:
//   unknown fields, wrong types and missing required fields are 400s that name the field.
// - PUT and PATCH answer 204 with no body when they succeed; GETs answer 200 with JSON.
// - Every error is JSON {"fault_message": "..."}: 400 for a bad request or one the VM's state does
//   not allow (configuring after InstanceStart, pausing before it), 404 for an unknown path, 405
//   for a known path with another method, 413 for a body over 64 KiB, 500 for a tsvm bug.
// - The server runs in the VMM's main thread, next to the device models; no handler blocks (the
//   vCPUs run in their own threads under KVM, so requests are answered while the guest runs).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { SchemaError } from './json-schema.js';
import { apiSchemas } from './openapi.js';
import { BootError } from '../boot/boot-plan.js';
import { ConfigError, type VmConfig } from '../vmm/vm-config.js';
import { KvmUnavailableError } from '../accel/kvm/kvm-system.js';
import { GuestMemoryError } from '../memory/guest-memory.js';
import type { VmMetrics } from '../vmm/runtime-metrics.js';
import {
  applyBootSource, applyDrive, applyMachineConfig, applyNetworkInterface, documentFromConfig, machineConfigOf,
  type BootSourceDoc, type DriveDoc, type MachineConfigDoc, type NetworkInterfaceDoc,
} from '../vmm/config-file.js';

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export type InstanceState = 'Not started' | 'Running' | 'Paused';

/** What the API needs from the VMM that hosts it (runtime-instance.ts implements it). */
export interface VmmController {
  readonly name: string;
  readonly version: string;
  instanceState(): InstanceState;
  /** tsvm's additions to GET /: pid, accelerator, sockets, uptime. */
  instanceExtras(): Record<string, string | number>;
  /** Pre-boot: the configuration the PUTs build; afterwards, the one the guest runs with. */
  config(): VmConfig;
  /** Changes the pre-boot configuration; throws ApiError(400) once the guest has started. */
  editConfig(what: string, edit: (c: VmConfig) => void): void;
  /** InstanceStart: boots the configured guest; throws a user error (400) if it cannot. */
  start(): Promise<void>;
  pause(): void;
  resume(): void;
  /** SendCtrlAltDel: asks the guest to shut down (the ACPI power button). */
  ctrlAltDel(): void;
  /** Power button, then a forced stop after `timeoutS` (the VM's grace period if unset). */
  shutdown(timeoutS?: number): void;
  /** A forced stop now. */
  stopNow(): void;
  metrics(): VmMetrics;
}

interface Request {
  params: Record<string, string>;
  body: unknown;
}

interface Reply {
  status: number;
  body?: unknown;
}

type Handler = (req: Request) => Reply | Promise<Reply>;

interface Route {
  template: string;
  pattern: RegExp;
  params: string[];
  methods: Partial<Record<string, { schema?: string; handler: Handler }>>;
}

const MAX_BODY = 64 * 1024;
const USER_ERRORS = [ConfigError, BootError, KvmUnavailableError, GuestMemoryError];
const NO_CONTENT: Reply = { status: 204 };

function route(template: string, methods: Route['methods']): Route {
  const params: string[] = [];
  const re = template.replace(/\{([a-z_]+)\}/g, (_m, p: string) => {
    params.push(p);
    return '([^/]+)';
  });
  return { template, pattern: new RegExp(`^${re}$`), params, methods };
}

export interface ApiServerStats {
  requests: number;
  errors: number;
}

export class ApiServer {
  readonly stats: ApiServerStats = { requests: 0, errors: 0 };
  private server?: Server;
  private readonly routes: Route[];

  constructor(private readonly vmm: VmmController, private readonly log: (line: string) => void = () => {}) {
    this.routes = this.buildRoutes();
  }

  private buildRoutes(): Route[] {
    const vmm = this.vmm;
    const idMatches = (kind: string, fromPath: string, fromBody: string) => {
      if (fromPath !== fromBody) throw new ApiError(400, `the ${kind} in the path ("${fromPath}") and in the body ("${fromBody}") differ`);
    };
    return [
      route('/', {
        GET: { handler: () => ({ status: 200, body: { app_name: 'tsvm', id: vmm.name, state: vmm.instanceState(), vmm_version: vmm.version, ...vmm.instanceExtras() } }) },
      }),
      route('/version', {
        GET: { handler: () => ({ status: 200, body: { firecracker_version: vmm.version, tsvm_version: vmm.version } }) },
      }),
      route('/boot-source', {
        PUT: {
          schema: 'BootSource',
          handler: ({ body }) => {
            vmm.editConfig('boot-source', (c) => applyBootSource(c, body as BootSourceDoc, { checkFiles: true }));
            return NO_CONTENT;
          },
        },
      }),
      route('/machine-config', {
        GET: { handler: () => ({ status: 200, body: machineConfigOf(vmm.config()) }) },
        PUT: {
          schema: 'MachineConfiguration',
          handler: ({ body }) => {
            vmm.editConfig('machine-config', (c) => applyMachineConfig(c, body as MachineConfigDoc, { replace: true }));
            return NO_CONTENT;
          },
        },
        PATCH: {
          schema: 'MachineConfigurationUpdate',
          handler: ({ body }) => {
            vmm.editConfig('machine-config', (c) => applyMachineConfig(c, body as MachineConfigDoc));
            return NO_CONTENT;
          },
        },
      }),
      route('/drives/{drive_id}', {
        PUT: {
          schema: 'Drive',
          handler: ({ params, body }) => {
            const d = body as DriveDoc;
            idMatches('drive_id', params.drive_id, d.drive_id);
            vmm.editConfig('drives', (c) => applyDrive(c, d, { checkFiles: true }));
            return NO_CONTENT;
          },
        },
      }),
      route('/network-interfaces/{iface_id}', {
        PUT: {
          schema: 'NetworkInterface',
          handler: ({ params, body }) => {
            const n = body as NetworkInterfaceDoc;
            idMatches('iface_id', params.iface_id, n.iface_id);
            vmm.editConfig('network-interfaces', (c) => applyNetworkInterface(c, n));
            return NO_CONTENT;
          },
        },
      }),
      route('/actions', {
        PUT: {
          schema: 'InstanceActionInfo',
          handler: async ({ body }) => {
            const a = body as { action_type: string; timeout_s?: number };
            if (a.timeout_s !== undefined && a.action_type !== 'Shutdown') throw new ApiError(400, 'timeout_s goes only with action_type Shutdown');
            switch (a.action_type) {
              case 'InstanceStart':
                await vmm.start();
                break;
              case 'SendCtrlAltDel':
                this.requireStarted('SendCtrlAltDel');
                vmm.ctrlAltDel();
                break;
              case 'Shutdown':
                this.requireStarted('Shutdown');
                vmm.shutdown(a.timeout_s);
                break;
              case 'Stop':
                this.requireStarted('Stop');
                // Answer first: the process ends when the guest has stopped.
                setImmediate(() => vmm.stopNow());
                break;
            }
            return NO_CONTENT;
          },
        },
      }),
      route('/vm', {
        PATCH: {
          schema: 'Vm',
          handler: ({ body }) => {
            const { state } = body as { state: 'Paused' | 'Resumed' };
            this.requireStarted(`setting the state to ${state}`);
            if (state === 'Paused') vmm.pause();
            else vmm.resume();
            return NO_CONTENT;
          },
        },
      }),
      route('/vm/config', {
        GET: { handler: () => ({ status: 200, body: documentFromConfig(vmm.config()) }) },
      }),
      route('/metrics', {
        GET: { handler: () => ({ status: 200, body: { ...vmm.metrics(), api: { ...this.stats } } }) },
      }),
    ];
  }

  private requireStarted(what: string): void {
    if (this.vmm.instanceState() === 'Not started') {
      throw new ApiError(400, `${what} needs a running VM: configure it and send InstanceStart first`);
    }
  }

  /** Listens on `path`. A leftover socket file nobody answers on is replaced; a live one is an error. */
  async listen(path: string): Promise<void> {
    if (existsSync(path)) {
      const live = await new Promise<boolean>((resolve) => {
        const s = connect(path);
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
      });
      if (live) throw new ConfigError(`--api-sock ${path}: another process is serving on that socket`);
      unlinkSync(path);
    }
    const server = createServer({ keepAlive: true }, (req, res) => { void this.handle(req, res); });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => reject(new ConfigError(`--api-sock ${path}: ${e.code === 'ENOENT' ? 'its directory does not exist' : e.message}`)));
      server.listen(path, () => {
        server.removeAllListeners('error');
        server.on('error', (e) => this.log(`API server: ${e.message}`));
        resolve();
      });
    });
  }

  close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return Promise.resolve();
    server.closeIdleConnections();
    return new Promise((resolve) => {
      const t = setTimeout(() => { server.closeAllConnections(); resolve(); }, 500);
      t.unref();
      server.close(() => { clearTimeout(t); resolve(); });
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.requests++;
    let reply: Reply;
    try {
      reply = await this.dispatch(req);
    } catch (e) {
      reply = this.errorReply(e);
    }
    if (reply.status >= 400) this.stats.errors++;
    if (reply.body === undefined) {
      res.writeHead(reply.status).end();
    } else {
      const text = JSON.stringify(reply.body);
      res.writeHead(reply.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) }).end(text);
    }
  }

  private errorReply(e: unknown): Reply {
    if (e instanceof ApiError) return { status: e.status, body: { fault_message: e.message } };
    if (e instanceof SchemaError) return { status: 400, body: { fault_message: e.message } };
    if (USER_ERRORS.some((cls) => e instanceof cls)) return { status: 400, body: { fault_message: (e as Error).message } };
    const err = e as Error;
    this.log(`API: internal error: ${err.stack ?? String(e)}`);
    return { status: 500, body: { fault_message: `internal error: ${err.message}` } };
  }

  private async dispatch(req: IncomingMessage): Promise<Reply> {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const pathName = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    let found: { r: Route; m: RegExpExecArray } | undefined;
    for (const r of this.routes) {
      const m = r.pattern.exec(pathName);
      if (m) { found = { r, m }; break; }
    }
    const raw = await readBody(req);
    if (!found) throw new ApiError(404, `no such path: ${pathName} (see docs/openapi.json)`);
    const op = found.r.methods[method];
    if (!op) throw new ApiError(405, `${method} is not supported on ${found.r.template}; use ${Object.keys(found.r.methods).join(' or ')}`);
    const params: Record<string, string> = {};
    found.r.params.forEach((p, i) => { params[p] = decodeURIComponent(found.m[i + 1]); });
    let body: unknown;
    if (op.schema) {
      if (raw.length === 0) throw new ApiError(400, `${method} ${found.r.template} needs a JSON body`);
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch (e) {
        throw new ApiError(400, `the body is not valid JSON: ${(e as Error).message}`);
      }
      apiSchemas().validate(body, op.schema);
    }
    return op.handler({ params, body });
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > MAX_BODY) tooBig = true;
      else chunks.push(c);
    });
    req.on('end', () => (tooBig ? reject(new ApiError(413, `the body is larger than ${MAX_BODY} bytes`)) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}
