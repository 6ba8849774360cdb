import { EventState } from "../../gen/ticketqueue/v1/ticket_queue_pb.js";
import type { EventInfo } from "./queue-store.js";

/** Where an event is in its life at `now` (epoch ms). */
export function eventStateOf(info: EventInfo, now: number): EventState {
  if (info.opensAt > 0 && now < info.opensAt) return EventState.SCHEDULED;
  if (info.closesAt > 0 && now >= info.closesAt) return EventState.CLOSED;
  if (info.paused) return EventState.PAUSED;
  return EventState.OPEN;
}
