// A cache of L2 tables ("Cluster mapping": each is exactly one cluster), least recently used
// first. Changed tables stay dirty in memory until a flush writes them (image.ts orders that
// write after the data and refcounts it depends on); only clean tables are evicted.

export interface L2Table {
  offset: number;
  bytes: Uint8Array;
  view: DataView;
  dirty: boolean;
}

export class L2Cache {
  private readonly tables = new Map<number, L2Table>();
  private readonly loading = new Map<number, Promise<L2Table>>();

  constructor(readonly capacity: number) {}

  /** The table at `offset`, loading it with `load` on a miss. */
  async get(offset: number, load: () => Promise<Uint8Array>): Promise<L2Table> {
    const hit = this.tables.get(offset);
    if (hit) {
      // Refresh its place in the LRU order.
      this.tables.delete(offset);
      this.tables.set(offset, hit);
      return hit;
    }
    let p = this.loading.get(offset);
    if (!p) {
      p = load().then((bytes) => {
        this.loading.delete(offset);
        const again = this.tables.get(offset);
        if (again) return again;
        const t = { offset, bytes, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.length), dirty: false };
        this.tables.set(offset, t);
        this.evict();
        return t;
      });
      this.loading.set(offset, p);
      p.catch(() => this.loading.delete(offset));
    }
    return p;
  }

  /** Adds a table created in memory (a newly allocated L2 table), dirty. */
  insertNew(offset: number, bytes: Uint8Array): L2Table {
    const t = { offset, bytes, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.length), dirty: true };
    this.tables.set(offset, t);
    this.evict();
    return t;
  }

  /**
   * Marks a table changed. The caller may hold a table that was evicted (clean) while it waited
   * for I/O; it goes back in, replacing any copy read from disk meanwhile (ours is newer).
   */
  markDirty(t: L2Table): void {
    t.dirty = true;
    if (this.tables.get(t.offset) !== t) {
      this.tables.delete(t.offset);
      this.tables.set(t.offset, t);
    }
  }

  dirtyTables(): L2Table[] {
    return [...this.tables.values()].filter((t) => t.dirty);
  }

  get dirtyCount(): number {
    let n = 0;
    for (const t of this.tables.values()) if (t.dirty) n++;
    return n;
  }

  private evict(): void {
    if (this.tables.size <= this.capacity) return;
    for (const [off, t] of this.tables) {
      if (this.tables.size <= this.capacity) break;
      if (!t.dirty) this.tables.delete(off);
    }
  }
}
