import { randomUUID } from "node:crypto";
import type { ServiceImpl } from "@connectrpc/connect";
import { ReservationStatus, type TicketQueueService } from "../../gen/ticketqueue/v1/ticket_queue_pb.js";
import type { QueueStore } from "../queue/queue-store.js";
import { checkUserId } from "../queue/user-id.js";

/**
 * The RPCs. Thin by design: validate, call one store method (one Lua script),
 * shape the answer. Auth and error mapping live in interceptors.
 */
export function ticketQueueService(store: QueueStore): ServiceImpl<typeof TicketQueueService> {
  return {
    async reserve(req) {
      const userId = req.userId === "" ? randomUUID() : req.userId;
      checkUserId(userId);
      const result = await store.reserve(userId);
      return {
        userId,
        status: result.status,
        position: result.position,
        alreadyReserved: result.alreadyKnown && result.status === ReservationStatus.RESERVED,
        alreadyInQueue: result.alreadyKnown && result.status === ReservationStatus.QUEUED,
      };
    },

    async getStatus(req) {
      checkUserId(req.userId);
      const state = await store.status(req.userId);
      return { userId: req.userId, ...state };
    },

    async processQueue() {
      const promoted = await store.processQueue();
      return { promotedUserIds: promoted, promotedCount: promoted.length };
    },

    async reset() {
      return store.reset();
    },

    async health() {
      const latency = await store.ping();
      return { status: "ok", redisOk: true, redisLatencyMs: Math.round(latency * 1000) / 1000 };
    },
  };
}
