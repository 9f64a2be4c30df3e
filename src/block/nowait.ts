// preadv2(2) with RWF_NOWAIT through koffi: a read the host page cache can answer right now, done
// synchronously on the calling thread. If any of the data would have to come from the disk the
// kernel returns what it has (a short count) or EAGAIN at once instead of waiting, so the caller
// never blocks on the device; it completes the rest through the thread pool as before.
//
// Why: a positional read through fs/promises is a libuv thread-pool job, and its completion is
// only seen on a later event-loop turn. Under the software CPU the guest runs on that same
// thread, so each guest request paid a thread hand-off and a turn (~30-60 µs here, more when the
// 2 host cores are busy) for a page-cache copy that takes 2-3 µs (docs/BENCHMARKS.md, bench:blk).
//
// Loaded lazily; where libc, the call or the flag is unavailable (old kernels: EOPNOTSUPP or
// EINVAL), `readNowait` reports 'unsupported' and the caller stops trying.
// TSVM_BLOCK_NOWAIT=0 turns it off (for comparisons).
import koffi from 'koffi';

const RWF_NOWAIT = 0x00000008;
const EAGAIN = 11;
const EINTR = 4;

interface Iovec {
  base: Uint8Array;
  len: number;
}
type Preadv2Fn = (fd: number, iov: Iovec[], iovcnt: number, offset: number, flags: number) => number;

let fn: Preadv2Fn | null | undefined;

function binding(): Preadv2Fn | null {
  if (fn === undefined) {
    fn = null;
    if (process.env.TSVM_BLOCK_NOWAIT !== '0') {
      try {
        const libc = koffi.load('libc.so.6');
        koffi.struct('tsvm_block_iovec', { base: 'void *', len: 'size_t' });
        fn = libc.func('long preadv2(int fd, const tsvm_block_iovec *iov, int iovcnt, int64_t offset, int flags)') as Preadv2Fn;
      } catch {
        fn = null;
      }
    }
  }
  return fn;
}

/** Most buffers one call takes (Linux's IOV_MAX); longer lists use the thread pool. */
export const NOWAIT_MAX_BUFFERS = 1024;

/**
 * Reads into `bufs` (back to back from `offset`) what the page cache holds now. Returns the bytes
 * read (0 when nothing was cached or at the end of the file; may be short), or 'unsupported' when
 * this host cannot do it. Never waits for the disk.
 */
export function readNowait(fd: number, bufs: readonly Uint8Array[], offset: number): number | 'unsupported' {
  const f = binding();
  if (!f || bufs.length > NOWAIT_MAX_BUFFERS) return 'unsupported';
  const iov = bufs.map((b) => ({ base: b, len: b.length }));
  for (;;) {
    const n = f(fd, iov, iov.length, offset, RWF_NOWAIT);
    if (n >= 0) return n;
    const e = koffi.errno();
    if (e === EINTR) continue;
    // EAGAIN: not (all) cached. Anything else (EOPNOTSUPP, EINVAL, ENOSYS, EBADF on odd files):
    // leave the read, and its error if any, to the ordinary path.
    return e === EAGAIN ? 0 : 'unsupported';
  }
}
