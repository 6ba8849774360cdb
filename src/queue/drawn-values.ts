import type { QueueStore } from "./queue-store.js";

/** Drawlist records read per call (14 bytes each): each a short read. */
const PAGE = 20_000;
const RECORD = 14;

/**
 * The published values of each event's latest draw, sorted: read once per
 * process from the drawlist (see includes/event.lua) and shared by every
 * caller, so a million entrants learn their drawn place from one paged read
 * (8 bytes a value in memory), not a Redis read each.
 */
export class DrawnValues {
  private readonly lists = new Map<string, { finalSeed: string; values: Promise<Float64Array> }>();

  constructor(private readonly store: QueueStore) {}

  /** The sorted draw values of the draw whose final seed is `finalSeed`. */
  get(eventId: string, finalSeed: string): Promise<Float64Array> {
    const known = this.lists.get(eventId);
    if (known?.finalSeed === finalSeed) return known.values;
    const values = this.fetch(eventId);
    this.lists.set(eventId, { finalSeed, values });
    // A failed read (Redis away) is retried by the next caller.
    values.catch(() => {
      if (this.lists.get(eventId)?.values === values) this.lists.delete(eventId);
    });
    return values;
  }

  /** Forgets an event's list (after a Reset). */
  forget(eventId: string): void {
    this.lists.delete(eventId);
  }

  private async fetch(eventId: string): Promise<Float64Array> {
    const drawn: number[] = [];
    const left = new Map<number, number>();
    let expected = 0;
    for (let from = 0, records = 1; from < records; from += PAGE) {
      const page = await this.store.drawlist(eventId, from, PAGE);
      records = page.records;
      expected = page.drawn;
      for (let i = 0; i + RECORD <= page.text.length; i += RECORD) {
        const value = Number.parseInt(page.text.slice(i + 1, i + RECORD), 16);
        if (page.text[i] === "-") left.set(value, (left.get(value) ?? 0) + 1);
        else drawn.push(value);
      }
    }
    const values = new Float64Array(drawn.length - [...left.values()].reduce((a, b) => a + b, 0));
    let n = 0;
    for (const value of drawn) {
      const gone = left.get(value) ?? 0;
      if (gone > 0) left.set(value, gone - 1);
      else values[n++] = value;
    }
    if (n !== expected) throw new Error(`event ${eventId}'s drawlist holds ${n} values where the draw counted ${expected}`);
    return values.sort();
  }
}
