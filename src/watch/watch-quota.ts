import { OpenCounts } from "../open-counts.js";
import { StateError, StateErrorCode } from "../queue/state-errors.js";

/**
 * At most `max` concurrent watch streams per key (a user of an event) in this
 * process: a few tabs and devices, not the thousands one ticket could open.
 */
export class WatchQuota {
  private readonly open = new OpenCounts<string>();

  constructor(private readonly max: number) {}

  /** Counts one more stream for `key`, or throws TooManyWatches. */
  take(key: string): void {
    if (this.open.get(key) >= this.max) throw new StateError(StateErrorCode.TooManyWatches, `${this.max} watch streams are already open for this user: close one first`);
    this.open.add(key);
  }

  /** One stream `take` counted has ended (a method, not a closure per stream: every open watch would hold one). */
  give(key: string): void {
    this.open.remove(key);
  }
}
