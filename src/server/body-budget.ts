import { Code, ConnectError } from "@connectrpc/connect";

/** A request body being read under the budget. */
export interface BodyHolder {
  /** Stop reading it: the budget needs its bytes for newer bodies (they are already given back). */
  cut(): void;
}

/**
 * Request bytes all unfinished bodies of one process may hold together. Each
 * body is bounded (64 KiB), but clients that each send most of one and never
 * the rest (50,000 connections, or 40,000 HTTP/2 streams) would hold
 * gigabytes. When a new chunk does not fit, the oldest unfinished bodies are
 * cut, as the request timeout would cut them later: a body a client keeps
 * unfinished is old, and one sent whole is held for a moment, so refusing the
 * newcomer instead would let a few stalled clients turn every other away. Only
 * a body that does not fit even alone is refused (`serverBusy`).
 */
export class BodyBudget {
  private held = 0;
  private cuts = 0;
  /** Bodies holding bytes, oldest first (a Map keeps the order keys were first set in). */
  private readonly holders = new Map<BodyHolder, number>();

  constructor(readonly max: number) {}

  /** Takes `bytes` for `holder`, cutting older bodies to make room; false when it cannot fit even alone. */
  take(holder: BodyHolder, bytes: number): boolean {
    const mine = this.holders.get(holder) ?? 0;
    if (mine + bytes > this.max) return false;
    while (this.held + bytes > this.max) {
      const oldest = this.oldestBesides(holder);
      if (!oldest) return false;
      this.give(oldest);
      this.cuts += 1;
      oldest.cut();
    }
    this.holders.set(holder, mine + bytes);
    this.held += bytes;
    return true;
  }

  /** Gives back everything `holder` took (again: nothing). */
  give(holder: BodyHolder): void {
    const bytes = this.holders.get(holder);
    if (bytes === undefined) return;
    this.holders.delete(holder);
    this.held -= bytes;
  }

  /** Bytes held now. */
  get heldBytes(): number {
    return this.held;
  }

  /** Bodies cut so far (a metric). */
  get cutTotal(): number {
    return this.cuts;
  }

  private oldestBesides(holder: BodyHolder): BodyHolder | undefined {
    for (const other of this.holders.keys()) if (other !== holder) return other;
    return undefined;
  }
}

/** A body larger than the whole budget: retryable, as the other load limits are. */
export function serverBusy(): ConnectError {
  return new ConnectError("the server holds too many unfinished requests: retry later", Code.ResourceExhausted);
}
