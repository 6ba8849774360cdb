import type { EventInfo, FeedEntry, QueueStore } from "../queue/queue-store.js";

/** One message of a WatchEvent stream. */
export interface EventUpdate {
  info: EventInfo;
  joinsPerSecond: number;
  promotionsPerSecond: number;
  feed: FeedEntry[];
  cursor: string;
}

const TICK_MS = 1000;
const FEED_PAGE = 1000;

/**
 * An event's counts once a second (the dashboard's time series) and the feed of
 * seat changes after `cursor`. For operators and the booking system, who are
 * few: two reads a second per watcher.
 */
export async function* watchEvent(store: QueueStore, eventId: string, cursor: string, signal: AbortSignal): AsyncGenerator<EventUpdate> {
  let position = cursor === "" ? await store.feedEnd(eventId) : cursor;
  let previous: EventInfo | undefined;
  while (!signal.aborted) {
    const info = await store.getEvent(eventId);
    const feed = await store.feed(eventId, position, FEED_PAGE);
    position = feed.at(-1)?.id ?? position;
    const seconds = previous ? Math.max((info.now - previous.now) / 1000, 0.001) : 1;
    // Totals restart at 0 after a Reset: a drop counts as nothing, not as negative.
    const perSecond = (now: number, before: number | undefined): number => (before === undefined || now < before ? 0 : Math.round((now - before) / seconds));
    yield {
      info,
      joinsPerSecond: perSecond(info.joinedTotal, previous?.joinedTotal),
      promotionsPerSecond: perSecond(info.promotedTotal, previous?.promotedTotal),
      feed,
      cursor: position,
    };
    previous = info;
    // A full page means more is waiting: send it without pausing.
    if (feed.length < FEED_PAGE) await sleep(TICK_MS, signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
