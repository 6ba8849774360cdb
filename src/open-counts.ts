/**
 * How many of something are open per key (watch streams per user, connections
 * per address): a key is kept only while its count is above zero, so a map of
 * a million past visitors does not stay behind.
 */
export class OpenCounts<K> {
  private readonly counts = new Map<K, number>();

  get(key: K): number {
    return this.counts.get(key) ?? 0;
  }

  /** One more for `key`. */
  add(key: K): void {
    this.counts.set(key, this.get(key) + 1);
  }

  /** One fewer for `key` (one that is not counted stays uncounted). */
  remove(key: K): void {
    const n = this.counts.get(key);
    if (n === undefined) return;
    if (n <= 1) this.counts.delete(key);
    else this.counts.set(key, n - 1);
  }

  get size(): number {
    return this.counts.size;
  }

  keys(): IterableIterator<K> {
    return this.counts.keys();
  }
}
