// Data held as back-to-back host buffers: the segments of a virtio descriptor chain (views of
// guest RAM), a block request's buffers for vectored reads and writes.

/** Bytes in `bufs` together. */
export function totalLength(bufs: readonly Uint8Array[]): number {
  let n = 0;
  for (const b of bufs) n += b.length;
  return n;
}

/** Views of bytes [start, start + len) of `bufs` taken back to back (no copy; no empty views). */
export function sliceBuffers(bufs: readonly Uint8Array[], start: number, len: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const b of bufs) {
    if (len <= 0) break;
    if (start >= b.length) {
      start -= b.length;
      continue;
    }
    const n = Math.min(b.length - start, len);
    out.push(b.subarray(start, start + n));
    len -= n;
    start = 0;
  }
  return out;
}

/** One buffer with the bytes of `bufs` (the buffer itself when there is just one). */
export function joinBuffers(bufs: readonly Uint8Array[]): Uint8Array {
  if (bufs.length === 1) return bufs[0];
  const out = new Uint8Array(totalLength(bufs));
  let at = 0;
  for (const b of bufs) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** Copy up to `dst.length` bytes from the segments, starting `skip` bytes in; returns the count. */
export function gather(segs: readonly Uint8Array[], dst: Uint8Array, skip = 0): number {
  let done = 0;
  for (const v of sliceBuffers(segs, skip, dst.length)) {
    dst.set(v, done);
    done += v.length;
  }
  return done;
}

/** Copy `src` into the segments starting `skip` bytes in; returns the bytes written. */
export function scatter(segs: readonly Uint8Array[], src: Uint8Array, skip = 0): number {
  let done = 0;
  for (const v of sliceBuffers(segs, skip, src.length)) {
    v.set(src.subarray(done, done + v.length));
    done += v.length;
  }
  return done;
}
