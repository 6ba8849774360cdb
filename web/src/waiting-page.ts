// The travellers' page: choose a train, join its line, follow your place live
// (WatchStatus over gRPC-web), confirm or give up your seat.
import { Code } from "@connectrpc/connect";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { DrawState, EventState, ReservationStatus, StatusChange, type Event, type WatchStatusResponse } from "../../gen/ticketqueue/v1/ticket_queue_pb.js";
import { errorMessage, isCode, keepFollowing, queueClient } from "./client.js";
import { byId, show } from "./dom.js";
import { currentLang, setUpLanguageSwitch, t } from "./i18n.js";
import { alertTurn, askForNotifications, canAskForNotifications, unlockSound } from "./turn-alert.js";
import { solveInWorker } from "./proof-of-work.js";
import { clearEntry, entryFromTicket, forgetJoinKey, joinKey, loadEntry, loadUserToken, saveEntry, saveUserToken, subjectOf, travellerId, type Entry } from "./entry.js";

const client = queueClient(undefined, loadUserToken);

const el = {
  choose: byId("choose"),
  form: byId<HTMLFormElement>("join-form"),
  train: byId<HTMLSelectElement>("train"),
  trainInfo: byId("train-info"),
  join: byId<HTMLButtonElement>("join"),
  noTrains: byId("no-trains"),
  status: byId("status"),
  statusHeading: byId("status-heading"),
  trainName: byId("train-name"),
  announcement: byId("announcement"),
  notify: byId<HTMLButtonElement>("notify"),
  position: byId("position"),
  wait: byId("wait"),
  saleState: byId("sale-state"),
  promotion: byId("promotion"),
  hold: byId("hold"),
  connection: byId("connection"),
  confirm: byId<HTMLButtonElement>("confirm"),
  cancel: byId<HTMLButtonElement>("cancel"),
  again: byId<HTMLButtonElement>("again"),
  resumeLink: byId<HTMLInputElement>("resume-link"),
  copy: byId<HTMLButtonElement>("copy"),
  copied: byId("copied"),
  error: byId("error"),
  signedIn: byId("signed-in"),
};

let trains: Event[] = [];
let entry: Entry | undefined;
let trainLabel = "";
let last: WatchStatusResponse | undefined;
let watching: AbortController | undefined;
let holdTimer: number | undefined;

setUpLanguageSwitch(byId<HTMLButtonElement>("lang"), () => {
  drawSignedIn();
  drawTrains();
  drawStatus();
});

// The fragment (never sent to the server) may carry a user token from the operator's
// site (#token=…) or a ticket from another device (#ticket=…); it leaves the
// address bar at once.
const fragment = new URLSearchParams(location.hash.slice(1));
if (location.hash) history.replaceState(null, "", location.pathname);
const handedOver = fragment.get("token");
if (handedOver) takeUserToken(handedOver);
const fromLink = fragment.get("ticket");
if (fromLink) {
  const linked = entryFromTicket(fromLink);
  if (linked) saveEntry(linked);
}
drawSignedIn();
entry = loadEntry();
if (entry) void follow(entry);
else void chooseTrain();

/**
 * Keeps the user token handed over in the link. A different user than the one
 * signed in here is switched to only when the traveller agrees: a link carrying
 * someone else's token must not silently change who is waiting.
 */
function takeUserToken(token: string): void {
  const next = subjectOf(token);
  if (!next) return;
  const current = loadUserToken();
  const currentUser = current ? subjectOf(current) : undefined;
  if (currentUser && currentUser !== next && !window.confirm(t("identity.replace", { current: currentUser, next }))) return;
  if (currentUser !== next) clearEntry(); // the place shown here was the other user's
  saveUserToken(token);
}

function drawSignedIn(): void {
  const token = loadUserToken();
  const user = token ? subjectOf(token) : undefined;
  el.signedIn.textContent = user ? t("identity.signedIn", { user }) : "";
  show(el.signedIn, user !== undefined);
}

async function chooseTrain(): Promise<void> {
  show(el.status, false);
  show(el.choose, true);
  try {
    trains = (await client.listEvents({})).events;
    drawTrains();
  } catch (err: unknown) {
    fail(err);
  }
}

function drawTrains(): void {
  const selected = el.train.value;
  el.train.replaceChildren(
    ...trains.map((e) => {
      const label = e.state === EventState.OPEN ? e.name : prequeueOpen(e) ? `${e.name} (${t("waiting.statePrequeue", { time: timeText(e.opensAt) })})` : `${e.name} (${stateText(e.state)})`;
      const option = new Option(label, e.eventId);
      option.disabled = !joinable(e);
      return option;
    }),
  );
  const firstOpen = trains.find(joinable);
  el.train.value = trains.some((e) => e.eventId === selected && joinable(e)) ? selected : (firstOpen?.eventId ?? "");
  show(el.noTrains, !firstOpen);
  el.join.disabled = !firstOpen;
  drawTrainInfo();
}

/** Before its opening, a train's pre-queue may already take travellers (their places are drawn at the opening). */
function prequeueOpen(e: Event): boolean {
  return e.state === EventState.SCHEDULED && e.draw?.state === DrawState.OPEN && (!e.prequeueOpensAt || timestampDate(e.prequeueOpensAt).getTime() <= Date.now());
}

function joinable(e: Event): boolean {
  return e.state === EventState.OPEN || prequeueOpen(e);
}

function timeText(t: Timestamp | undefined): string {
  return t ? timestampDate(t).toLocaleTimeString(document.documentElement.lang || undefined, { hour: "2-digit", minute: "2-digit" }) : "";
}

function drawTrainInfo(): void {
  const e = trains.find((x) => x.eventId === el.train.value);
  const c = e?.counts;
  el.trainInfo.textContent = e && c ? t("waiting.seatsLeft", { free: Math.max(0, e.capacity - c.reserved), capacity: e.capacity, waiting: c.waiting }) : "";
}

el.train.addEventListener("change", drawTrainInfo);

el.form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  unlockSound();
  void join(el.train.value);
});

async function join(eventId: string): Promise<void> {
  el.join.disabled = true;
  el.join.textContent = t("waiting.joining");
  el.error.textContent = "";
  try {
    const powSolution = await proofOfWork(eventId);
    let r = await reserveRetrying(eventId, powSolution);
    if (isFinal(r.status)) {
      // The place this browser's key made has ended since: this is a new join.
      forgetJoinKey(eventId);
      r = await reserveRetrying(eventId, await proofOfWork(eventId));
    }
    if (r.ticket === "") {
      // Already in this line from an earlier visit whose ticket (and key) this browser lost.
      throw new Error(t("status.alreadyInLine"));
    }
    const joined = { eventId: r.eventId, userId: r.userId, ticket: r.ticket };
    saveEntry(joined);
    entry = joined;
    void follow(joined); // runs as long as the entry lives; it shows the status at once
    el.statusHeading.focus();
  } catch (err: unknown) {
    fail(err);
  } finally {
    el.join.disabled = false;
    el.join.textContent = t("waiting.join");
  }
}

/**
 * Reserve with this browser's key for the train, tried again (same key) while the
 * service is unavailable or the network fails: a join whose answer was lost is
 * found again, with its ticket, instead of being made twice or left ticketless.
 */
async function reserveRetrying(eventId: string, powSolution: string) {
  for (let attempt = 1; ; attempt++) {
    try {
      // A retry sends the same solution: the service lets the same user use it again.
      // Signed in: the service takes the user from the token.
      const userId = loadUserToken() ? "" : travellerId();
      return await client.reserve({ eventId, userId, idempotencyKey: joinKey(eventId), powSolution });
    } catch (err: unknown) {
      const retryable = isCode(err, Code.Unavailable) || isCode(err, Code.DeadlineExceeded) || isCode(err, Code.Unknown);
      if (!retryable || attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 500 * 2 ** (attempt - 1)));
    }
  }
}

/** A solved challenge when the train asks for proof of work (showing progress on the button), else "". */
async function proofOfWork(eventId: string): Promise<string> {
  const train = trains.find((e) => e.eventId === eventId);
  if (!train || train.powDifficulty === 0) return "";
  const challenge = await client.getChallenge({ eventId });
  const show = (fraction: number): void => {
    el.join.textContent = t("waiting.solving", { percent: Math.round(fraction * 100) });
  };
  show(0);
  try {
    return await solveInWorker(challenge, show);
  } finally {
    el.join.textContent = t("waiting.joining");
  }
}

/** Shows the entry and follows it live until it ends, reconnecting after failures. */
async function follow(e: Entry): Promise<void> {
  show(el.choose, false);
  show(el.status, true);
  el.promotion.textContent = "";
  last = undefined;
  el.resumeLink.value = `${location.origin}/#ticket=${e.ticket}`;
  trainLabel = e.eventId;
  drawStatus();
  client.getEvent({ eventId: e.eventId }).then(
    (r) => {
      trainLabel = r.event?.name ?? e.eventId;
      drawStatus();
    },
    () => undefined,
  );
  watching?.abort();
  const controller = new AbortController();
  watching = controller;
  await keepFollowing(
    (signal) => client.watchStatus(e, { signal }),
    controller.signal,
    (update) => {
      el.connection.textContent = "";
      onUpdate(update);
      return isFinal(update.status); // the server ends the stream after a final state
    },
    (err) => {
      if (isCode(err, Code.Unauthenticated) || isCode(err, Code.PermissionDenied) || isCode(err, Code.NotFound)) {
        clearEntry();
        fail(err);
        return true;
      }
      el.connection.textContent = t("status.reconnecting");
      return false;
    },
  );
}

function onUpdate(update: WatchStatusResponse): void {
  const wasQueued = last?.status === ReservationStatus.QUEUED;
  last = update;
  if (update.change === StatusChange.PROMOTED || (wasQueued && update.status === ReservationStatus.RESERVED)) {
    el.promotion.textContent = t("status.promoted", { train: trainLabel });
    alertTurn(t("alert.title"), t("status.promoted", { train: trainLabel }));
  }
  if (isFinal(update.status)) clearEntry();
  drawStatus();
}

function drawStatus(): void {
  el.trainName.textContent = trainLabel;
  const s = last;
  const a = s?.announcement;
  const message = a ? (currentLang() === "ko" ? a.messageKo || a.messageEn : a.messageEn || a.messageKo) : "";
  el.announcement.textContent = message;
  show(el.announcement, message !== "");
  show(el.notify, s !== undefined && !isFinal(s.status) && s.status !== ReservationStatus.RESERVED && canAskForNotifications());
  const status = s?.status;
  el.position.textContent = "";
  el.wait.textContent = "";
  el.hold.textContent = "";
  // Pushed live (STATUS_CHANGE_EVENT_STATE): a paused sale keeps everyone's place.
  el.saleState.textContent = s?.eventState === EventState.PAUSED && !isFinal(status) ? t("status.salePaused") : "";
  window.clearInterval(holdTimer);
  if (s && status === ReservationStatus.PREQUEUED) {
    el.position.textContent = t("status.prequeued", { time: timeText(s.opensAt) });
  } else if (s && status === ReservationStatus.QUEUED) {
    el.position.textContent = t("status.queued", { position: s.position });
    if (s.drawnPlace > 0) el.position.textContent += ` ${t("status.drawn", { place: s.drawnPlace })}`;
    el.wait.textContent = s.estimatedWait ? t("status.wait", { wait: waitText(Number(s.estimatedWait.seconds)) }) : t("status.waitUnknown");
  } else if (s && status === ReservationStatus.RESERVED) {
    el.position.textContent = s.promoted && el.promotion.textContent ? "" : t("status.reserved", { train: trainLabel });
    if (s.holdExpiresAt) {
      const until = timestampDate(s.holdExpiresAt).getTime();
      const tick = (): void => {
        const left = Math.max(0, Math.round((until - Date.now()) / 1000));
        el.hold.textContent = t("status.hold", { time: `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}` });
      };
      tick();
      holdTimer = window.setInterval(tick, 1000);
    } else if (s.change === StatusChange.CONFIRMED) {
      el.wait.textContent = t("status.confirmed");
    }
  } else if (status === ReservationStatus.CANCELLED) {
    el.position.textContent = t("status.cancelled");
  } else if (status === ReservationStatus.EXPIRED) {
    el.position.textContent = t("status.expired");
  } else if (status === ReservationStatus.ABANDONED) {
    el.position.textContent = t("status.abandoned");
  } else if (status === ReservationStatus.NOT_FOUND) {
    el.position.textContent = t("status.notFound");
  }
  const final = isFinal(status);
  show(el.confirm, status === ReservationStatus.RESERVED && s?.holdExpiresAt !== undefined);
  show(el.cancel, s !== undefined && !final);
  el.cancel.textContent = status === ReservationStatus.RESERVED ? t("status.cancelSeat") : t("status.cancel");
  show(el.again, final);
  show(byId("devices"), !final);
}

el.notify.addEventListener("click", () => {
  void askForNotifications().then(() => drawStatus());
});

el.confirm.addEventListener("click", () => {
  const e = entry;
  if (e) void act(() => client.confirm(e));
});
el.cancel.addEventListener("click", () => {
  const e = entry;
  if (e) void act(() => client.cancel(e));
});
el.again.addEventListener("click", () => {
  watching?.abort();
  entry = undefined;
  void chooseTrain();
});
el.copy.addEventListener("click", () => {
  void navigator.clipboard.writeText(el.resumeLink.value).then(
    () => (el.copied.textContent = t("status.copied")),
    () => el.resumeLink.select(),
  );
});

async function act(call: () => Promise<unknown>): Promise<void> {
  el.error.textContent = "";
  try {
    await call(); // the watch stream brings the new state
  } catch (err: unknown) {
    fail(err);
  }
}

function isFinal(status: ReservationStatus | undefined): boolean {
  return status === ReservationStatus.CANCELLED || status === ReservationStatus.EXPIRED || status === ReservationStatus.ABANDONED || status === ReservationStatus.NOT_FOUND;
}

function waitText(seconds: number): string {
  return seconds < 60 ? t("wait.seconds") : t("wait.minutes", { n: Math.round(seconds / 60) });
}

function stateText(state: EventState): string {
  if (state === EventState.SCHEDULED) return t("waiting.stateUpcoming");
  if (state === EventState.PAUSED) return t("waiting.statePaused");
  return t("waiting.stateClosed");
}

function fail(err: unknown): void {
  el.error.textContent = t("error.generic", { message: err instanceof Error && !("code" in err) ? err.message : errorMessage(err) });
}
