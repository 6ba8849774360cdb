/**
 * Redis keys of one queue. Every key carries the queue id as its hash tag
 * (`{id}`), so all keys of a queue live in one Redis Cluster slot and each Lua
 * script can touch them atomically; different queues spread over the cluster.
 */
export interface QueueKeys {
  /** Hash: capacity, next_seq. */
  readonly meta: string;
  /** Set of users holding a seat. */
  readonly reserved: string;
  /** Sorted set of waiting users, scored by join sequence (FIFO). */
  readonly waiting: string;
}

export function queueKeys(prefix: string, queueId: string): QueueKeys {
  const base = `${prefix}:{${queueId}}`;
  return {
    meta: `${base}:meta`,
    reserved: `${base}:reserved`,
    waiting: `${base}:waiting`,
  };
}

/** The keys in the order every script declares them in KEYS. */
export function scriptKeys(keys: QueueKeys): [string, string, string] {
  return [keys.meta, keys.reserved, keys.waiting];
}
