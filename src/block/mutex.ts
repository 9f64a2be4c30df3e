// A FIFO async mutex: qcow2 metadata updates (cluster allocation, L2/refcount changes, flush)
// run one at a time while data reads and in-place writes overlap freely.

export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  /** Runs `fn` once every earlier holder has finished; returns its result. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/** Counts operations in flight so that a later step can wait for those that started before it. */
export class InFlight {
  private readonly ops = new Set<Promise<unknown>>();

  track<T>(p: Promise<T>): Promise<T> {
    this.ops.add(p);
    const done = () => this.ops.delete(p);
    p.then(done, done);
    return p;
  }

  /** Resolves when every operation in flight now has settled (later ones are not waited for). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.ops]);
  }
}
