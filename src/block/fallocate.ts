// fallocate(2) through koffi, for discard and write-zeroes on host files: punching a hole frees
// the host blocks and the range reads as zeros afterwards. Loaded lazily: when libc or the
// call is unavailable (or the file system says EOPNOTSUPP), callers fall back to writing zeros.
import koffi from 'koffi';

const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;
const FALLOC_FL_ZERO_RANGE = 0x10;

type FallocateFn = (fd: number, mode: number, offset: number, len: number) => number;

let fn: FallocateFn | null | undefined;

function binding(): FallocateFn | null {
  if (fn === undefined) {
    try {
      const libc = koffi.load('libc.so.6');
      fn = libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)') as FallocateFn;
    } catch {
      fn = null;
    }
  }
  return fn;
}

/** Deallocates [offset, offset+len) of `fd` keeping the file size; false when not possible. */
export function punchHole(fd: number, offset: number, len: number): boolean {
  const f = binding();
  if (!f || len <= 0) return false;
  return f(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len) === 0;
}

/** Zeroes [offset, offset+len) keeping it allocated and the file size unchanged; false when not possible. */
export function zeroRange(fd: number, offset: number, len: number): boolean {
  const f = binding();
  if (!f || len <= 0) return false;
  return f(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, len) === 0;
}
