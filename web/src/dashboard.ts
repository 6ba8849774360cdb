// The operators' dashboard: every train's counts live from the admin WatchEvent
// stream, a chart of joins and promotions, and the actions of the sale.
import { Code } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { DrawState, EventState, ReservationStatus, type Event } from "../../gen/ticketqueue/v1/ticket_queue_pb.js";
import { drawChart, type Sample } from "./chart.js";
import { errorMessage, isCode, keepFollowing, queueClient } from "./client.js";
import { download, toCsv } from "./csv.js";
import { byId, show } from "./dom.js";
import { setUpLanguageSwitch, t, type TextKey } from "./i18n.js";

const TOKEN_KEY = "tq.adminToken";
/** How much history the chart shows. */
const CHART_WINDOW_MS = 5 * 60_000;
/**
 * Trains followed live at once. Over plain HTTP/1.1 a browser opens at most six
 * connections to one origin and each stream holds one: keep two for the actions.
 * (Behind an HTTP/2 proxy the limit does not bite, but the screen stays readable.)
 */
const MAX_LIVE = 4;

let token = sessionStorage.getItem(TOKEN_KEY) ?? "";
const client = queueClient(() => token);

interface Train {
  event: Event;
  samples: Sample[];
  stream?: AbortController;
}

const trains = new Map<string, Train>();
let selected: string | undefined;
let lookedUp: string | undefined;

const el = {
  signIn: byId("sign-in"),
  signInForm: byId<HTMLFormElement>("sign-in-form"),
  token: byId<HTMLInputElement>("token"),
  signOut: byId<HTMLButtonElement>("sign-out"),
  console: byId("console"),
  notice: byId("notice"),
  error: byId("error"),
  events: byId("events"),
  manage: byId("manage"),
  manageHeading: byId("manage-heading"),
  chart: byId("chart") as unknown as SVGSVGElement,
  chartTitle: byId("chart-title"),
  chartSummary: byId("chart-summary"),
  capacityForm: byId<HTMLFormElement>("capacity-form"),
  capacity: byId<HTMLInputElement>("capacity"),
  pause: byId<HTMLButtonElement>("pause"),
  process: byId<HTMLButtonElement>("process"),
  export: byId<HTMLButtonElement>("export"),
  reset: byId<HTMLButtonElement>("reset"),
  resetForm: byId<HTMLFormElement>("reset-form"),
  resetWarning: byId("reset-warning"),
  resetConfirm: byId<HTMLInputElement>("reset-confirm"),
  resetCancel: byId<HTMLButtonElement>("reset-cancel"),
  lookupForm: byId<HTMLFormElement>("lookup-form"),
  userId: byId<HTMLInputElement>("user-id"),
  userStatus: byId("user-status"),
  cancelUser: byId<HTMLButtonElement>("cancel-user"),
  createForm: byId<HTMLFormElement>("create-form"),
  flow: byId("flow"),
  announceForm: byId<HTMLFormElement>("announce-form"),
  announceKo: byId<HTMLInputElement>("announce-ko"),
  announceEn: byId<HTMLInputElement>("announce-en"),
};

setUpLanguageSwitch(byId<HTMLButtonElement>("lang"), () => {
  drawTable();
  drawManage();
});

if (token) void start();
else showSignIn();

function showSignIn(): void {
  show(el.signIn, true);
  show(el.console, false);
  show(el.signOut, false);
}

el.signInForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = el.token.value.trim();
  el.token.value = "";
  void start();
});

el.signOut.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  token = "";
  for (const train of trains.values()) train.stream?.abort();
  trains.clear();
  selected = undefined;
  showSignIn();
});

async function start(): Promise<void> {
  el.error.textContent = "";
  try {
    const { events } = await client.listEvents({});
    // ListEvents is public: an admin call proves the token before anything is shown.
    await client.listSeatHolders({ eventId: events[0]?.eventId ?? "", pageSize: 1 });
    sessionStorage.setItem(TOKEN_KEY, token);
    show(el.signIn, false);
    show(el.console, true);
    show(el.signOut, true);
    for (const event of events) trains.set(event.eventId, trains.get(event.eventId) ?? { event, samples: [] });
    selected ??= events[0]?.eventId;
    followLive();
    drawTable();
    drawManage();
  } catch (err: unknown) {
    if (isCode(err, Code.Unauthenticated) || isCode(err, Code.PermissionDenied)) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn();
      el.error.textContent = t("admin.badToken");
    } else fail(err);
  }
}

/** Follows the selected train and the first others, up to MAX_LIVE streams. */
function followLive(): void {
  const ids = [...trains.keys()];
  const wanted = new Set([...(selected ? [selected] : []), ...ids.filter((id) => id !== selected)].slice(0, MAX_LIVE));
  for (const [id, train] of trains) {
    if (wanted.has(id) && !train.stream) void watch(id, train);
    if (!wanted.has(id) && train.stream) {
      train.stream.abort();
      train.stream = undefined;
    }
  }
}

async function watch(eventId: string, train: Train): Promise<void> {
  const controller = new AbortController();
  train.stream = controller;
  await keepFollowing(
    (signal) => client.watchEvent({ eventId, cursor: "" }, { signal }),
    controller.signal,
    (update) => {
      if (update.event) train.event = update.event;
      const now = Date.now();
      train.samples.push({ at: now, joins: update.joinsPerSecond, promotions: update.promotionsPerSecond });
      while ((train.samples[0]?.at ?? now) < now - CHART_WINDOW_MS) train.samples.shift();
      drawRow(train);
      if (eventId === selected) drawManage();
      return false;
    },
    (err) => {
      if (!isCode(err, Code.Unauthenticated) && !isCode(err, Code.PermissionDenied)) return false;
      el.signOut.click();
      el.error.textContent = t("admin.badToken");
      return true;
    },
  );
}

function drawTable(): void {
  el.events.replaceChildren(...[...trains.values()].map(rowFor));
}

function rowFor(train: Train): HTMLTableRowElement {
  const row = document.createElement("tr");
  row.dataset["event"] = train.event.eventId;
  fillRow(row, train);
  return row;
}

function drawRow(train: Train): void {
  const row = el.events.querySelector<HTMLTableRowElement>(`tr[data-event="${CSS.escape(train.event.eventId)}"]`);
  if (row) fillRow(row, train);
  else el.events.append(rowFor(train));
}

function fillRow(row: HTMLTableRowElement, train: Train): void {
  const e = train.event;
  const c = e.counts;
  const name = document.createElement("button");
  name.type = "button";
  name.className = "link";
  const id = document.createElement("span");
  id.className = "id";
  id.textContent = e.eventId;
  name.append(e.name, id);
  name.addEventListener("click", () => select(e.eventId));
  const th = document.createElement("th");
  th.scope = "row";
  th.append(name);
  const cells = [stateText(e.state), e.capacity, c?.reserved ?? 0, c?.held ?? 0, c?.waiting ?? 0, c?.cancelledTotal ?? 0, train.stream ? t("admin.live") : t("admin.notLive")];
  const keys = ["state", "capacity", "reserved", "held", "waiting", "cancelled", "live"];
  row.replaceChildren(
    th,
    ...cells.map((value, i) => {
      const td = document.createElement("td");
      td.dataset["col"] = keys[i];
      // Shown above the value where a phone lays each train out as a card.
      td.dataset["label"] = t(`admin.col.${keys[i] ?? "live"}` as TextKey);
      td.textContent = String(value);
      return td;
    }),
  );
  row.setAttribute("aria-selected", String(e.eventId === selected));
}

function select(eventId: string): void {
  selected = eventId;
  show(el.resetForm, false);
  followLive();
  drawTable();
  drawManage(true);
  el.manageHeading.focus();
}

function drawManage(refillInputs = false): void {
  const train = selected ? trains.get(selected) : undefined;
  show(el.manage, train !== undefined);
  if (!train) return;
  const e = train.event;
  el.manageHeading.textContent = t("admin.manage", { train: e.name });
  // The chart spans whole minutes of what this page has seen, up to CHART_WINDOW_MS.
  const seenMs = Date.now() - (train.samples[0]?.at ?? Date.now());
  const minutes = Math.min(CHART_WINDOW_MS / 60_000, Math.max(1, Math.ceil(seenMs / 60_000)));
  el.chartTitle.textContent = t("admin.chart", { minutes });
  const latest = train.samples.at(-1);
  el.chartSummary.textContent = t("admin.chartSummary", { joins: latest?.joins ?? 0, promotions: latest?.promotions ?? 0 });
  drawChart(el.chart, train.samples, minutes * 60_000);
  el.pause.textContent = e.paused ? t("admin.resume") : t("admin.pause");
  if (refillInputs || el.capacity.value === "") el.capacity.value = String(e.capacity);
  drawFlow(e);
  if (refillInputs) {
    el.announceKo.value = e.announcement?.messageKo ?? "";
    el.announceEn.value = e.announcement?.messageEn ?? "";
  }
}

/** The opening and the flow: pre-queue and draw (the seed only once drawn), pace, walk-aways, parties, announcement. */
function drawFlow(e: Event): void {
  const d = e.draw;
  const rows: [string, string][] = [
    [t("admin.flow.prequeue"), d ? t("admin.flow.prequeueState", { state: DrawState[d.state].toLowerCase(), entrants: d.entrants, left: d.left, drawn: d.drawn }) : t("admin.flow.none")],
    ...(d ? ([[t("admin.flow.commitment"), d.commitment], [t("admin.flow.seed"), d.seed || t("admin.flow.seedHidden")]] as [string, string][]) : []),
    [t("admin.flow.pace"), e.admitPerMinute > 0 ? t("admin.flow.paceValue", { n: e.admitPerMinute }) : t("admin.flow.unpaced")],
    [t("admin.flow.walkAways"), e.presenceTimeoutSeconds > 0 ? t("admin.flow.walkAwaysValue", { seconds: e.presenceTimeoutSeconds, count: e.counts?.abandonedTotal ?? 0 }) : t("admin.flow.off")],
    [t("admin.flow.parties"), String(e.maxPartySize)],
    [t("admin.flow.announcement"), e.announcement ? [e.announcement.messageKo, e.announcement.messageEn].filter((m) => m !== "").join(" / ") : t("admin.flow.none")],
  ];
  el.flow.replaceChildren(
    ...rows.flatMap(([term, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      return [dt, dd];
    }),
  );
}

el.announceForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const eventId = selected;
  if (!eventId) return;
  const messageKo = el.announceKo.value.trim();
  const messageEn = el.announceEn.value.trim();
  void act(async () => {
    const r = await client.announce({ eventId, messageKo, messageEn });
    const train = trains.get(eventId);
    if (train && r.event) train.event = r.event;
    drawManage();
    return messageKo === "" && messageEn === "" ? t("admin.announceCleared") : t("admin.announced");
  });
});

el.capacityForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const eventId = selected;
  if (!eventId) return;
  const capacity = Number(el.capacity.value);
  void act(async () => {
    const r = await client.updateEvent({ eventId, capacity });
    return t("admin.capacitySet", { capacity, promoted: r.promotedUserIds.length });
  });
});

el.pause.addEventListener("click", () => {
  const train = selected ? trains.get(selected) : undefined;
  if (!train) return;
  const paused = !train.event.paused;
  void act(async () => {
    const r = await client.updateEvent({ eventId: train.event.eventId, paused });
    if (r.event) train.event = r.event;
    drawManage();
    return paused ? t("admin.paused") : t("admin.resumed");
  });
});

el.process.addEventListener("click", () => {
  const eventId = selected;
  if (eventId) void act(async () => t("admin.processed", { count: (await client.processQueue({ eventId })).promotedCount }));
});

el.export.addEventListener("click", () => {
  const eventId = selected;
  if (!eventId) return;
  void act(async () => {
    // Pages may repeat a seat that moved during the listing: keep each user once.
    const holders = new Map<string, { entry: bigint; hold: string; seats: number }>();
    let pageToken = "";
    do {
      const page = await client.listSeatHolders({ eventId, pageSize: 1000, pageToken });
      for (const s of page.seatHolders) holders.set(s.userId, { entry: s.entry, hold: s.holdExpiresAt ? timestampDate(s.holdExpiresAt).toISOString() : "", seats: s.seats });
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    const rows = [...holders].sort((a, b) => (a[1].entry < b[1].entry ? -1 : 1)).map(([user, h]) => [user, String(h.entry), h.hold, String(h.seats)]);
    download(`seat-holders-${eventId}.csv`, toCsv(["user_id", "entry", "hold_expires_at", "seats"], rows));
    return t("admin.exported", { count: rows.length });
  });
});

el.reset.addEventListener("click", () => {
  const train = selected ? trains.get(selected) : undefined;
  if (!train) return;
  el.resetWarning.textContent = t("admin.resetConfirm", { train: train.event.name, id: train.event.eventId });
  el.resetConfirm.value = "";
  show(el.resetForm, true);
  el.resetConfirm.focus();
});
el.resetCancel.addEventListener("click", () => {
  show(el.resetForm, false);
  el.reset.focus();
});
el.resetForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const eventId = selected;
  if (!eventId) return;
  // The server checks the confirmation too: a wrong id is refused there.
  void act(async () => {
    const r = await client.reset({ eventId, confirm: el.resetConfirm.value.trim() });
    show(el.resetForm, false);
    return t("admin.resetDone", { reserved: r.clearedReserved, waiting: r.clearedWaiting });
  });
});

el.lookupForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const eventId = selected ?? "";
  const userId = el.userId.value.trim();
  void act(async () => {
    const r = await client.getStatus({ eventId, userId });
    lookedUp = userId;
    el.userStatus.textContent = t("admin.userStatus", { user: userId, status: statusText(r.status, r.position) });
    show(el.cancelUser, r.status === ReservationStatus.RESERVED || r.status === ReservationStatus.QUEUED);
    return "";
  });
});

el.cancelUser.addEventListener("click", () => {
  const userId = lookedUp;
  if (!userId) return;
  void act(async () => {
    const r = await client.adminCancel({ eventId: selected ?? "", userId });
    show(el.cancelUser, false);
    el.userStatus.textContent = t("admin.userStatus", { user: userId, status: statusText(r.status, 0) });
    return t("admin.userCancelled", { user: userId, promoted: r.promotedUserIds.length });
  });
});

el.createForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const form = new FormData(el.createForm);
  const eventId = String(form.get("id") ?? "").trim();
  void act(async () => {
    const r = await client.createEvent({
      eventId,
      name: String(form.get("name") ?? "").trim(),
      capacity: Number(form.get("capacity")),
      holdSeconds: Number(form.get("hold")),
      // Empty: the event takes the service's MAX_WAITING.
      maxWaiting: String(form.get("max-waiting") ?? "") === "" ? undefined : Number(form.get("max-waiting")),
      powDifficulty: Number(form.get("pow")),
    });
    if (r.event) trains.set(eventId, { event: r.event, samples: [] });
    el.createForm.reset();
    select(eventId);
    return t("admin.created", { id: eventId });
  });
});

/** Runs an action, then says what happened (or what went wrong). */
async function act(action: () => Promise<string>): Promise<void> {
  el.error.textContent = "";
  try {
    const said = await action();
    if (said) el.notice.textContent = said;
  } catch (err: unknown) {
    fail(err);
  }
}

function stateText(state: EventState): string {
  const keys: Record<EventState, TextKey> = {
    [EventState.UNSPECIFIED]: "state.open",
    [EventState.SCHEDULED]: "state.upcoming",
    [EventState.OPEN]: "state.open",
    [EventState.PAUSED]: "state.paused",
    [EventState.CLOSED]: "state.closed",
  };
  return t(keys[state]);
}

function statusText(status: ReservationStatus, position: number): string {
  const name = ReservationStatus[status] as keyof typeof ReservationStatus;
  return name === "UNSPECIFIED" ? "" : t(`status.${name}`, { position });
}

function fail(err: unknown): void {
  el.error.textContent = t("error.generic", { message: errorMessage(err) });
}
