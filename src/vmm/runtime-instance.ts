// One VM as a managed process: the Vm, its runtime directory (runtime-dir.ts), its API server
// (src/api/server.ts) and its console socket (runtime-console.ts). `tsvm run` creates one per
// process, in the foreground or detached; the API drives it through the VmmController interface.
//
// Two ways in: a config that can boot is booted at once (`boot(vm)`, from flags or --config);
// otherwise, as Firecracker does, the VM waits for its configuration on the API socket and boots
// on InstanceStart (`start()`). Either way `exited` resolves once, with how the guest ended.
import { ApiError, ApiServer, type InstanceState, type VmmController } from '../api/server.js';
import { documentFromConfig } from './config-file.js';
import { ConsoleHub } from './runtime-console.js';
import { RuntimeDir, runtimeRoot } from './runtime-dir.js';
import type { VmMetrics } from './runtime-metrics.js';
import type { Logger } from './log.js';
import { Vm, type VmExit } from './vm.js';
import { ConfigError, validateConfig, type VmConfig } from './vm-config.js';

export interface VmInstanceOptions {
  config: VmConfig;
  log: Logger;
  version: string;
  /** Where the API listens (--api-sock); default: api.sock in the runtime directory. */
  apiSocket?: string;
  /** Default: runtimeRoot(). */
  runtimeRoot?: string;
}

export class VmInstance implements VmmController {
  readonly name: string;
  readonly version: string;
  readonly exited: Promise<VmExit>;
  /** Set when the host (API, `tsvm stop`) asked for the stop that ended the guest. */
  stopRequestedByHost = false;
  private draft: VmConfig;
  private vm?: Vm;
  private starting = false;
  private runtime?: RuntimeDir;
  private api?: ApiServer;
  private readonly hub: ConsoleHub;
  private readonly outputListeners = new Set<(bytes: Uint8Array) => void>();
  private readonly serialListeners = new Set<(bytes: Uint8Array) => void>();
  private resolveExit!: (exit: VmExit) => void;
  private ended = false;
  private readonly log: Logger;
  private readonly removeAtExit = (): void => this.runtime?.remove();

  constructor(private readonly opts: VmInstanceOptions) {
    this.name = opts.config.name;
    this.version = opts.version;
    this.log = opts.log;
    this.draft = { ...opts.config, disks: [...(opts.config.disks ?? [])], nets: [...(opts.config.nets ?? [])] };
    this.hub = new ConsoleHub({ onInput: (b) => this.consoleInput(b) });
    this.exited = new Promise((resolve) => { this.resolveExit = resolve; });
  }

  get runtimeDir(): RuntimeDir | undefined { return this.runtime; }
  get apiSocket(): string | undefined { return this.runtime?.apiSocket ?? this.opts.apiSocket; }
  get guest(): Vm | undefined { return this.vm; }

  /**
   * Claims the name (runtime directory) and opens the API and console sockets. A live VM with the
   * same name is an error; so is a runtime root that cannot be created, unless `optional` (a
   * foreground `tsvm run` then goes on without being manageable, and says so).
   */
  async open(optional = false): Promise<void> {
    try {
      this.runtime = RuntimeDir.claim(this.name, { apiSocket: this.opts.apiSocket, root: this.opts.runtimeRoot });
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      const msg = `cannot create the runtime directory under ${this.opts.runtimeRoot ?? runtimeRoot()}: ${(e as Error).message} (set TSVM_RUNTIME_DIR to a writable directory)`;
      if (!optional) throw new ConfigError(msg);
      this.log(`${msg}; tsvm ps, stop and console will not see this VM`);
    }
    process.on('exit', this.removeAtExit);
    try {
      const apiSocket = this.runtime?.apiSocket ?? this.opts.apiSocket;
      if (apiSocket) {
        this.api = new ApiServer(this, this.log);
        await this.api.listen(apiSocket);
      }
      if (this.runtime) await this.hub.listen(this.runtime.consoleSocket);
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  /** Guest console output, e.g. for the terminal of a foreground `tsvm run`. */
  onConsoleOutput(listener: (bytes: Uint8Array) => void): void {
    this.outputListeners.add(listener);
  }

  /** COM1's output when COM1 is not the console (config `console: 'virtio'`); nothing otherwise. */
  onSerialOutput(listener: (bytes: Uint8Array) => void): void {
    this.serialListeners.add(listener);
  }

  consoleInput(bytes: Uint8Array): void {
    this.vm?.consoleInput(bytes);
  }

  /**
   * Runs `vm` (made from this instance's config) and resolves once it runs: true; or false, with
   * `exited` resolved, if it could not start (a disk or TAP device that cannot be opened, KVM...).
   */
  async boot(vm: Vm): Promise<boolean> {
    this.vm = vm;
    this.draft = vm.config;
    vm.onConsoleOutput((b) => {
      this.hub.output(b);
      for (const l of this.outputListeners) l(b);
    });
    if (vm.serial !== vm.console) vm.serial.onData((b) => { for (const l of this.serialListeners) l(b); });
    this.runtime?.writeConfig(documentFromConfig(vm.config));
    const p = vm.run();
    void p.then((exit) => this.finish(exit));
    return (await vm.whenRunning()) === undefined;
  }

  /** Ends the instance without a guest (a signal before InstanceStart). */
  abort(exit: VmExit): void {
    if (this.vm) void this.vm.stop(exit.message);
    else this.finish(exit);
  }

  private finish(exit: VmExit): void {
    if (this.ended) return;
    this.ended = true;
    this.resolveExit(exit);
  }

  /** Closes the sockets and removes the runtime directory. */
  async close(): Promise<void> {
    await Promise.all([this.api?.close(), this.hub.close()]);
    this.runtime?.remove();
    process.removeListener('exit', this.removeAtExit);
  }

  // --- VmmController (the API) ---

  instanceState(): InstanceState {
    if (!this.vm) return 'Not started';
    return this.vm.status === 'paused' ? 'Paused' : 'Running';
  }

  instanceExtras(): Record<string, string | number> {
    const c = this.config();
    const extras: Record<string, string | number> = {
      pid: process.pid,
      vcpu_count: c.cpus,
      mem_size_mib: Math.floor(c.memoryBytes / (1024 * 1024)),
      uptime_ms: this.vm ? this.vm.uptimeMs : 0,
    };
    const accel = this.vm?.accelKind;
    if (accel) extras.accel = accel;
    if (this.runtime) {
      extras.api_socket = this.runtime.apiSocket;
      extras.console_socket = this.runtime.consoleSocket;
      extras.runtime_dir = this.runtime.path;
    }
    return extras;
  }

  config(): VmConfig {
    return this.vm?.config ?? this.draft;
  }

  editConfig(what: string, edit: (c: VmConfig) => void): void {
    if (this.vm || this.starting) throw new ApiError(400, `${what} cannot be changed after InstanceStart: the VM is already ${this.vm ? 'running' : 'starting'}`);
    // Edit a copy: a change that fails half-way leaves the configuration as it was.
    const copy: VmConfig = { ...this.draft, disks: [...this.draft.disks], nets: [...this.draft.nets] };
    edit(copy);
    this.draft = copy;
  }

  async start(): Promise<void> {
    if (this.vm || this.starting) throw new ApiError(400, 'InstanceStart: the VM has already been started');
    if (!this.draft.kernel && !this.draft.firmware) {
      throw new ApiError(400, 'InstanceStart: no boot source yet: PUT /boot-source with kernel_image_path (or firmware_path) first');
    }
    this.starting = true;
    try {
      const config = validateConfig({ ...this.draft, name: this.name });
      const vm = await Vm.create(config, { log: this.log });
      this.ended = true; // a start that fails is reported here, not as the instance's end
      const ok = await this.boot(vm);
      this.ended = false;
      if (ok && vm.status === 'stopped') this.finish(await vm.wait()); // ran, and ended already
      if (!ok) {
        const exit = await vm.wait();
        this.vm = undefined;
        this.ended = false;
        throw new ApiError(400, `InstanceStart: the VM could not start: ${exit.message}`);
      }
      this.log(`started through the API (${vm.accelKind ?? 'no accelerator'})`);
    } finally {
      this.starting = false;
    }
  }

  private running(what: string): Vm {
    const vm = this.vm;
    if (!vm || vm.status === 'created') throw new ApiError(400, `${what} needs a running VM: send InstanceStart first`);
    if (vm.status === 'stopped') throw new ApiError(400, `${what}: the guest has stopped`);
    return vm;
  }

  pause(): void {
    this.running('Pause').pause();
  }

  resume(): void {
    this.running('Resume').resume();
  }

  ctrlAltDel(): void {
    const vm = this.running('SendCtrlAltDel');
    if (vm.status === 'paused') vm.resume();
    if (!vm.powerButton()) this.log('SendCtrlAltDel: pressed the ACPI power button, but the guest does not listen to it');
  }

  shutdown(timeoutS?: number): void {
    const vm = this.running('Shutdown');
    this.stopRequestedByHost = true;
    const grace = timeoutS ?? vm.config.shutdownGraceSeconds;
    this.log(`shutdown requested through the API: pressing the ACPI power button; forcing a stop after ${grace} s`);
    void vm.shutdown(grace, 'shut down through the API');
  }

  stopNow(): void {
    const vm = this.running('Stop');
    this.stopRequestedByHost = true;
    void vm.stop('stopped through the API');
  }

  metrics(): VmMetrics {
    if (this.vm) return this.vm.metrics();
    return {
      utc_timestamp_ms: Date.now(),
      uptime_ms: 0,
      vcpu: { exits: 0, exits_io: 0, exits_mmio: 0, exits_other: 0, forwarded: 0 },
      devices: {},
      bus: { unclaimed: 0 },
      interrupts: { total: 0, by_gsi: {} },
      serial: { tx_bytes: 0, rx_bytes: 0 },
      virtio: {},
      resets: 0,
    };
  }
}
