// Reading a file descriptor that is not a socket (a TAP device, an eventfd) from Node's event
// loop, without a thread-pool thread parked in a blocking read(2).
//
// libuv can watch any pollable fd as a stream: its pipe handle (uv_pipe_open) only makes the fd
// non-blocking and adds it to epoll; it does not check that the fd is a pipe. net.Socket over that
// handle in `onread` mode then calls back once per successful read(2) with the byte count, so
// datagram-like fds (one frame per read on TAP, one 8-byte counter per read on an eventfd) keep
// their boundaries. Node 20 exposes the handle class only through process.binding('pipe_wrap')
// (a documentation-only deprecation, DEP0111: no warning is printed).
//
// Measured here (Node 20, TAP): frames arrive one callback per frame; see docs in tap.ts.
import net from 'node:net';

interface PipeHandle {
  open(fd: number): number;
}

type PipeCtor = new (type: number) => PipeHandle;

function pipeCtor(): PipeCtor {
  const binding = (process as unknown as { binding(name: string): { Pipe: PipeCtor } }).binding('pipe_wrap');
  return binding.Pipe;
}

export interface FdWatch {
  pause(): void;
  resume(): void;
  /** Stops watching and closes the fd (libuv owns it from `watchFd` on). */
  close(): Promise<void>;
}

/**
 * Call `onRead(n, buf)` from the event loop for each read(2) of up to `bufferSize` bytes that
 * `fd` yields. `buf` is reused: copy what you keep. The fd is made non-blocking.
 */
export function watchFd(fd: number, bufferSize: number, onRead: (n: number, buf: Uint8Array) => void): FdWatch {
  const Pipe = pipeCtor();
  const handle = new Pipe(0);
  const r = handle.open(fd);
  if (r !== 0) throw new Error(`cannot watch fd ${fd} with libuv (error ${r})`);
  const socket = new net.Socket({
    handle,
    readable: true,
    writable: false,
    onread: {
      buffer: Buffer.alloc(bufferSize),
      callback: (n: number, buf: Uint8Array) => {
        onRead(n, buf);
        return true;
      },
    },
  } as net.SocketConstructorOpts);
  socket.on('error', () => {});
  let closed: Promise<void> | undefined;
  return {
    pause: () => { socket.pause(); },
    resume: () => { socket.resume(); },
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.destroy();
      });
      return closed;
    },
  };
}
