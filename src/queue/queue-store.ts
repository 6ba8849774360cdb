import type { Redis } from "ioredis";
import { ReservationStatus } from "../../gen/ticketqueue/v1/ticket_queue_pb.js";
import { callRedis } from "../redis/redis-errors.js";
import { queueKeys, scriptKeys } from "./keys.js";
import { loadScripts, type ScriptRunner } from "./scripts.js";

/** The queue used until events arrive; every RPC acts on it. */
export const DEFAULT_QUEUE_ID = "default";

export interface UserState {
  status: ReservationStatus;
  /** 1-based place in the queue when QUEUED, else 0. */
  position: number;
}

export interface ReserveResult extends UserState {
  /** The user was reserved or waiting before the call. */
  alreadyKnown: boolean;
}

export interface ResetResult {
  clearedReserved: number;
  clearedWaiting: number;
}

export interface QueueStoreOptions {
  /** Key prefix, e.g. "tq". */
  prefix: string;
  /** Capacity stored when a queue is first created; afterwards the stored value wins. */
  defaultCapacity: number;
}

/**
 * Typed access to the queue's Lua scripts. Each method is one script call: one
 * round trip, atomic in Redis. No state is kept in Node.
 */
export class QueueStore {
  private readonly run: ScriptRunner;

  constructor(
    private readonly redis: Redis,
    private readonly options: QueueStoreOptions,
  ) {
    this.run = loadScripts(redis);
  }

  async reserve(userId: string, queueId = DEFAULT_QUEUE_ID): Promise<ReserveResult> {
    const reply = await this.run("reserve", this.keys(queueId), [userId, this.options.defaultCapacity]);
    const [status, position, known] = integers(reply, 3);
    return { status: statusFromScript(status), position, alreadyKnown: known === 1 };
  }

  async status(userId: string, queueId = DEFAULT_QUEUE_ID): Promise<UserState> {
    const reply = await this.run("status", this.keys(queueId), [userId]);
    const [status, position] = integers(reply, 2);
    return { status: statusFromScript(status), position };
  }

  /** Promotes waiting users into free seats; returns them in FIFO order. */
  async processQueue(queueId = DEFAULT_QUEUE_ID): Promise<string[]> {
    const reply = await this.run("processQueue", this.keys(queueId), [this.options.defaultCapacity]);
    if (!Array.isArray(reply) || !reply.every((id) => typeof id === "string")) {
      throw new Error("process-queue script answered an unexpected reply");
    }
    return reply;
  }

  async reset(queueId = DEFAULT_QUEUE_ID): Promise<ResetResult> {
    const reply = await this.run("reset", this.keys(queueId), []);
    const [clearedReserved, clearedWaiting] = integers(reply, 2);
    return { clearedReserved, clearedWaiting };
  }

  /** Round trip to Redis in milliseconds. */
  async ping(): Promise<number> {
    const started = performance.now();
    await callRedis(() => this.redis.ping());
    return performance.now() - started;
  }

  private keys(queueId: string): string[] {
    return scriptKeys(queueKeys(this.options.prefix, queueId));
  }
}

function integers(reply: unknown, count: number): number[] {
  if (!Array.isArray(reply) || reply.length !== count || !reply.every((n) => typeof n === "number")) {
    throw new Error(`script answered ${JSON.stringify(reply)}, expected ${count} integers`);
  }
  return reply;
}

function statusFromScript(code: number | undefined): ReservationStatus {
  switch (code) {
    case 1:
      return ReservationStatus.RESERVED;
    case 2:
      return ReservationStatus.QUEUED;
    case 3:
      return ReservationStatus.NOT_FOUND;
    default:
      throw new Error(`script answered unknown status ${String(code)}`);
  }
}
