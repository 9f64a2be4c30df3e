// The serial console of a running VM for other processes: a Unix socket (console.sock in the
// runtime directory) that `tsvm console NAME` connects to.
//
// Protocol: raw bytes both ways, nothing else. What the client sends is typed at the guest's
// serial port; what the guest writes comes back untouched. Several clients may be attached at
// once: each receives all output produced while it is attached, and all of their input reaches
// the guest (merged in arrival order).
//
// Guarantees (what the tests check):
// - The guest never waits for a client. Output while no client is attached goes to a backlog
//   (the newest 64 KiB; older bytes are dropped and counted); the next client to attach receives
//   the backlog first, then live output. A client that does not read gets up to 1 MiB queued,
//   beyond that its output is dropped and counted.
// - Clean detach loses nothing: a client detaches by shutting down its sending side (FIN; what
//   `tsvm console` does on its escape key or at the end of its input) and reading on until the
//   server closes. The server stops sending to it the moment it sees the FIN, finishes the
//   bytes already queued and closes; output from then on goes to the other clients, or to the
//   backlog if none is left. So across attach/detach cycles every byte reaches exactly one
//   session (as long as the backlog did not overflow in between). A client that vanishes
//   without a FIN (killed) loses what was in flight to it.
import { createServer, type Server, type Socket } from 'node:net';
import { existsSync, unlinkSync } from 'node:fs';

export interface ConsoleHubOptions {
  /** Input from clients, for the guest. */
  onInput: (bytes: Uint8Array) => void;
  backlogBytes?: number;
  clientQueueBytes?: number;
}

export interface ConsoleHubStats {
  attached: number;
  attaches: number;
  backlogDropped: number;
  clientDropped: number;
}

export class ConsoleHub {
  readonly stats: ConsoleHubStats = { attached: 0, attaches: 0, backlogDropped: 0, clientDropped: 0 };
  private readonly clients = new Set<Socket>();
  private backlog: Buffer[] = [];
  private backlogLen = 0;
  private server?: Server;
  private readonly backlogLimit: number;
  private readonly clientLimit: number;

  constructor(private readonly opts: ConsoleHubOptions) {
    this.backlogLimit = opts.backlogBytes ?? 64 * 1024;
    this.clientLimit = opts.clientQueueBytes ?? 1024 * 1024;
  }

  /** Guest output. */
  output(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const buf = Buffer.from(bytes); // a copy: callers may reuse their buffer
    if (this.clients.size === 0) {
      this.backlog.push(buf);
      this.backlogLen += buf.length;
      while (this.backlogLen > this.backlogLimit) {
        const head = this.backlog[0];
        const excess = this.backlogLen - this.backlogLimit;
        if (head.length <= excess) {
          this.backlog.shift();
          this.backlogLen -= head.length;
          this.stats.backlogDropped += head.length;
        } else {
          this.backlog[0] = head.subarray(excess);
          this.backlogLen -= excess;
          this.stats.backlogDropped += excess;
        }
      }
      return;
    }
    for (const c of this.clients) {
      if (c.writableLength > this.clientLimit) this.stats.clientDropped += buf.length;
      else c.write(buf);
    }
  }

  listen(path: string): Promise<void> {
    if (existsSync(path)) unlinkSync(path);
    const server = createServer({ allowHalfOpen: true }, (sock) => this.accept(sock));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.removeListener('error', reject);
        server.on('error', () => { /* accept errors: keep serving */ });
        resolve();
      });
    });
  }

  private accept(sock: Socket): void {
    this.stats.attaches++;
    if (this.backlogLen > 0) {
      sock.write(Buffer.concat(this.backlog));
      this.backlog = [];
      this.backlogLen = 0;
    }
    this.clients.add(sock);
    this.stats.attached = this.clients.size;
    const detach = () => {
      this.clients.delete(sock);
      this.stats.attached = this.clients.size;
    };
    sock.on('data', (d: Buffer) => this.opts.onInput(d));
    sock.on('end', () => {
      // The client detached: nothing more for it; finish what is queued and close.
      detach();
      sock.end();
    });
    sock.on('error', () => {
      detach();
      sock.destroy();
    });
    sock.on('close', detach);
  }

  /** Stops listening and closes every client (after its queued output). */
  close(): Promise<void> {
    for (const c of this.clients) c.end();
    this.clients.clear();
    const server = this.server;
    this.server = undefined;
    if (!server) return Promise.resolve();
    // Clients get a moment to read their last bytes; one that does not close is not waited for.
    return new Promise((resolve) => {
      const t = setTimeout(resolve, 1000);
      t.unref();
      server.close(() => { clearTimeout(t); resolve(); });
    });
  }
}
