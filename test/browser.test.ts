// The web app in a real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core), against the real service and Redis, over gRPC-web.
// TQ_SCREENSHOTS=1 writes the screenshots into docs/screenshots/ (committed).
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import axe from "axe-core";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ReservationStatus, TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { eventKeys } from "../src/queue/keys.js";
import { userJwtVerifier } from "../src/rpc/user-identity.js";
import { ON_CLUSTER, startTestService, TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";

const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
const SHOTS = process.env["TQ_SCREENSHOTS"] === "1" ? "docs/screenshots" : mkdtempSync(join(tmpdir(), "tq-shots-"));
const PHONE = { width: 360, height: 740 };
const DESKTOP = { width: 1280, height: 900 };
const admin = { headers: { "x-token": TEST_ADMIN_TOKEN } };

let browser: Browser;
let api: ReturnType<typeof createClient<typeof TicketQueueService>>;
const contexts: BrowserContext[] = [];
/** Uncaught errors in any page: a test that leaves one fails. */
const pageErrors: string[] = [];
afterEach(() => {
  expect(pageErrors.splice(0)).toEqual([]);
});

const env = useTestService();
beforeAll(async () => {
  api = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
  // As root, with no network beyond loopback: no sandbox, no background fetches.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  mkdirSync(SHOTS, { recursive: true });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  if (SHOTS !== "docs/screenshots") rmSync(SHOTS, { recursive: true, force: true });
});

/** A new browser context (its own storage: another traveller or device) on `path`. */
async function open(path: string, viewport = PHONE, locale = "en-US", baseUrl = env.svc.baseUrl): Promise<Page> {
  const context = await browser.newContext({ viewport, locale, acceptDownloads: true });
  contexts.push(context);
  const page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  await page.goto(baseUrl + path);
  return page;
}

/** axe-core's serious and critical findings (WCAG 2 A and AA rules). */
async function accessibilityProblems(page: Page): Promise<string[]> {
  // Evaluated through the DevTools protocol: the page's CSP forbids inline scripts, rightly.
  await page.evaluate(axe.source);
  // Runs in the page (this file is compiled without the DOM's types, hence globalThis).
  const found = await page.evaluate(async () => {
    const page = globalThis as unknown as { axe: typeof axe; document: axe.ElementContext };
    const result = await page.axe.run(page.document, { runOnly: ["wcag2a", "wcag2aa", "best-practice"] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact ?? "", nodes: v.nodes.map((n) => n.target.join(" ")).join(", ") }));
  });
  return found.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id} (${v.impact}): ${v.nodes}`);
}

async function joinTrain(page: Page, eventId: string): Promise<void> {
  await page.selectOption("#train", eventId);
  await page.click("#join");
}

describe("waiting page", () => {
  it("a traveller in a full train sees a live place, and the promotion without a reload when another cancels", async () => {
    await api.createEvent({ eventId: "ktx-7", name: "KTX 7 서울→부산", capacity: 1 }, admin);

    const seated = await open("/");
    await joinTrain(seated, "ktx-7");
    await expect.poll(() => seated.textContent("#position")).toContain("You have a seat on KTX 7");

    const waiting = await open("/");
    await joinTrain(waiting, "ktx-7");
    await expect.poll(() => waiting.textContent("#position")).toBe("You are number 1 in line.");
    expect(await waiting.textContent("#wait")).toBe("Estimated wait: not known yet."); // no promotions seen yet
    // Someone joins behind, someone ahead leaves: the place follows live.
    await waiting.evaluate(() => Object.assign(globalThis, { notReloaded: true }));

    await seated.click("#cancel");
    await expect.poll(() => seated.textContent("#position")).toContain("You left the line");
    await expect.poll(() => waiting.textContent("#promotion"), { timeout: 5000 }).toBe("Your turn came: you have a seat on KTX 7 서울→부산!");
    expect(await waiting.evaluate(() => (globalThis as { notReloaded?: boolean }).notReloaded)).toBe(true);

    // A reload keeps the place; the link moves it to another device.
    await waiting.reload();
    await expect.poll(() => waiting.textContent("#position")).toContain("You have a seat on KTX 7");
    const link = await waiting.inputValue("#resume-link");
    expect(link).toMatch(/\/#ticket=[\w-]+\.[\w-]+\.[\w-]+$/);
    const otherDevice = await open(new URL(link).pathname + new URL(link).hash);
    await expect.poll(() => otherDevice.textContent("#position")).toContain("You have a seat on KTX 7");
    expect(otherDevice.url()).not.toContain("ticket="); // taken out of the address bar and history
  });

  it("shows the place and the estimated wait in Korean, fits a 360-pixel phone, and passes axe", async () => {
    await api.createEvent({ eventId: "srt-3", name: "SRT 3 수서→목포", capacity: 1 }, admin);
    await api.reserve({ eventId: "srt-3", userId: "first" });
    await api.reserve({ eventId: "srt-3", userId: "second" });
    // 30 promotions over the last minute, as estimated-wait.test.ts seeds them: an estimate exists.
    const [, , , , , rate = ""] = eventKeys(env.svc.prefix, "srt-3");
    const bucket = Math.floor((Number((await env.svc.redis.time())[0]) * 1000) / 10_000);
    for (let b = bucket - 6; b < bucket; b++) await env.svc.redis.hset(rate, b, 5);

    const page = await open("/", PHONE, "ko-KR");
    await expect.poll(() => page.textContent("h1")).toBe("좌석을 기다리세요");
    expect(await page.getAttribute("html", "lang")).toBe("ko");
    await page.selectOption("#train", "srt-3");
    expect(await page.textContent("#train-info")).toBe("좌석 1석 중 0석 남음, 1명 대기 중");
    expect(await accessibilityProblems(page)).toEqual([]);
    await page.screenshot({ path: join(SHOTS, "waiting-phone-ko-choose.png"), fullPage: true });

    await page.click("#join");
    await expect.poll(() => page.textContent("#position")).toBe("대기 순번 2번입니다.");
    expect(await page.textContent("#wait")).toBe("예상 대기 시간: 1분 이내.");
    expect(await page.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(PHONE.width);
    expect(await accessibilityProblems(page)).toEqual([]);
    await page.screenshot({ path: join(SHOTS, "waiting-phone.png"), fullPage: true });

    await page.click("#lang");
    expect(await page.textContent("#position")).toBe("You are number 2 in line.");
    const desktop = await open("/", DESKTOP);
    await joinTrain(desktop, "srt-3");
    await expect.poll(() => desktop.textContent("#position")).toBe("You are number 3 in line.");
    await desktop.screenshot({ path: join(SHOTS, "waiting-desktop.png"), fullPage: true });
  });
});

describe("the opening", () => {
  it("a pre-queued traveller sees the opening and their drawn place without a reload, the operator's announcement, and a notification when their turn comes", async () => {
    const opensAt = Date.now() + 5000;
    await api.createEvent({ eventId: "seollal-1", name: "Seollal 1", capacity: 1, opensAt: timestampFromMs(opensAt) }, admin);
    const context = await browser.newContext({ viewport: PHONE, locale: "en-US" });
    contexts.push(context);
    await context.grantPermissions(["notifications"], { origin: env.svc.baseUrl });
    // Records each notification the page shows (headless Chromium draws none).
    await context.addInitScript(`{
      const shown = [];
      globalThis.shownNotifications = shown;
      const Real = window.Notification;
      class Recorded extends Real { constructor(title, options) { shown.push(title); super(title, options); } }
      window.Notification = Recorded;
    }`);
    const page = await context.newPage();
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    await page.goto(env.svc.baseUrl + "/");
    await joinTrain(page, "seollal-1");
    await expect.poll(() => page.textContent("#position")).toMatch(/^Waiting for the opening at \d\d:\d\d.*: your place will be drawn then\.$/);
    await api.reserve({ eventId: "seollal-1", userId: "other" });
    await page.evaluate(() => Object.assign(globalThis, { notReloaded: true }));

    // Paused before the opening: the draw still happens, nobody is seated yet.
    await api.updateEvent({ eventId: "seollal-1", paused: true }, admin);
    await expect.poll(() => page.textContent("#position"), { timeout: 15_000 }).toMatch(/^You are number [12] in line\. Your place was drawn: number [12] of the early arrivals\.$/);
    await expect.poll(() => page.textContent("#sale-state")).toBe("The operator has paused the sale. Your place is kept.");
    await api.announce({ eventId: "seollal-1", messageKo: "곧 매진됩니다", messageEn: "Almost sold out" }, admin);
    await expect.poll(() => page.textContent("#announcement")).toBe("Almost sold out");

    // Resumed: the first drawn is seated; if that was the other traveller, they leave.
    await api.updateEvent({ eventId: "seollal-1", paused: false }, admin);
    await expect.poll(() => page.textContent("#sale-state")).toBe("");
    if ((await api.getStatus({ eventId: "seollal-1", userId: "other" })).drawnPlace === 0) await api.adminCancel({ eventId: "seollal-1", userId: "other" }, admin);
    await expect.poll(() => page.textContent("#promotion"), { timeout: 5000 }).toBe("Your turn came: you have a seat on Seollal 1!");
    expect(await page.evaluate(() => (globalThis as { shownNotifications?: string[] }).shownNotifications)).toEqual(["Your turn came!"]);
    expect(await page.evaluate(() => (globalThis as { notReloaded?: boolean }).notReloaded)).toBe(true);
  }, 40_000);
});

describe("the REST API's docs (/docs)", () => {
  it("Swagger UI loads the service's OpenAPI under the strict CSP, and a 'try it' Reserve succeeds", async () => {
    const page = await open("/docs", DESKTOP);
    const violations: string[] = [];
    page.on("console", (m) => {
      if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
    });
    const reserve = page.locator("#operations-TicketQueueService-Reserve");
    await reserve.locator(".opblock-summary").click();
    await reserve.locator(".try-out__btn").click();
    await reserve.locator("textarea.body-param__text").fill('{"user_id": "from-the-docs"}');
    await reserve.locator("button.execute").click();
    await expect.poll(() => reserve.locator(".live-responses-table tbody .response-col_status").first().textContent(), { timeout: 10_000 }).toContain("200");
    expect(await reserve.locator(".live-responses-table tbody .response-col_description").first().textContent()).toContain('"user_id": "from-the-docs"');
    expect([ReservationStatus.RESERVED, ReservationStatus.QUEUED]).toContain((await api.getStatus({ userId: "from-the-docs" })).status);
    expect(violations).toEqual([]);
  }, 40_000);
});

describe("a service restart", () => {
  it("the waiting page says it is reconnecting, then shows the same place again", async () => {
    const own = await startTestService(env.redis.url);
    const ownApi = createClient(TicketQueueService, createGrpcTransport({ baseUrl: own.baseUrl }));
    await ownApi.createEvent({ eventId: "restart", name: "KTX restart", capacity: 1 }, admin);
    await ownApi.reserve({ eventId: "restart", userId: "ahead" });
    const page = await open("/", PHONE, "en-US", own.baseUrl);
    await joinTrain(page, "restart");
    await expect.poll(() => page.textContent("#position")).toBe("You are number 1 in line.");

    await own.close(); // open watch streams end with UNAVAILABLE
    await expect.poll(() => page.textContent("#connection"), { timeout: 5000 }).toBe("Connection lost; reconnecting…");
    const again = await startTestService(env.redis.url, { port: own.port, prefix: own.prefix });
    try {
      await expect.poll(() => page.textContent("#connection"), { timeout: 15_000 }).toBe("");
      expect(await page.textContent("#position")).toBe("You are number 1 in line.");
      await createClient(TicketQueueService, createGrpcTransport({ baseUrl: again.baseUrl })).adminCancel({ eventId: "restart", userId: "ahead" }, admin);
      await expect.poll(() => page.textContent("#promotion"), { timeout: 5000 }).toBe("Your turn came: you have a seat on KTX restart!");
    } finally {
      await again.close();
    }
  }, 40_000);
});

describe("purchase holds", () => {
  it("shows the time left to confirm, and the confirmation", async () => {
    await api.createEvent({ eventId: "ktx-hold", name: "KTX hold", capacity: 1, holdSeconds: 120 }, admin);
    const page = await open("/");
    await joinTrain(page, "ktx-hold");
    await expect.poll(() => page.textContent("#hold")).toMatch(/^Confirm your seat within (2:00|1:5\d), or it passes to the next person\.$/);
    await page.click("#confirm");
    await expect.poll(() => page.textContent("#wait")).toBe("Your seat is confirmed.");
    expect(await page.isVisible("#confirm")).toBe(false);
    expect(await page.textContent("#hold")).toBe("");
  });
});

describe("a lost ticket", () => {
  type Storage = { localStorage: { removeItem(k: string): void } };
  it("joining again from the same browser finds the place with the join's key; without the key it says the place exists and how to reach it", async () => {
    await api.createEvent({ eventId: "ktx-lost", name: "KTX lost", capacity: 5 }, admin);
    const page = await open("/");
    await joinTrain(page, "ktx-lost");
    await expect.poll(() => page.textContent("#position")).toContain("You have a seat");
    // The ticket is gone, the join's idempotency key is not: joining again finds the same place.
    await page.evaluate(() => (globalThis as unknown as Storage).localStorage.removeItem("tq.entry"));
    await page.reload();
    await joinTrain(page, "ktx-lost");
    await expect.poll(() => page.textContent("#position")).toContain("You have a seat");
    // Both gone: the service gives no ticket to whoever only knows the traveller id.
    await page.evaluate(() => {
      (globalThis as unknown as Storage).localStorage.removeItem("tq.entry");
      (globalThis as unknown as Storage).localStorage.removeItem("tq.join.ktx-lost");
    });
    await page.reload();
    await joinTrain(page, "ktx-lost");
    await expect.poll(() => page.textContent("#error")).toBe("Something went wrong: You are already in this line from an earlier visit: open the link you kept to follow it there.");
  });

  it.skipIf(ON_CLUSTER)("a join made while Redis is paused is retried with its key and ends with the place and its ticket", async () => {
    await api.createEvent({ eventId: "ktx-paused", name: "KTX paused", capacity: 5 }, admin);
    const page = await open("/");
    await expect.poll(() => page.locator("#train option").count()).toBeGreaterThan(0);
    env.redis.pause();
    try {
      await joinTrain(page, "ktx-paused");
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      env.redis.resume();
    }
    await expect.poll(() => page.textContent("#position"), { timeout: 10_000 }).toContain("You have a seat");
    expect(await page.inputValue("#resume-link")).toMatch(/#ticket=ey/);
    expect((await api.getEvent({ eventId: "ktx-paused" })).event?.counts?.joinedTotal).toBe(1);
  });
});

describe("proof of work", () => {
  it("a train that asks for it: the page solves the challenge in a worker (showing progress) and joins; solve times printed", async () => {
    const lines: string[] = [];
    for (const difficulty of [50_000, 200_000]) {
      const eventId = `pow-${difficulty}`;
      await api.createEvent({ eventId, name: `KTX pow ${difficulty}`, capacity: 100, powDifficulty: difficulty }, admin);
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const page = await open("/");
        await expect.poll(() => page.locator(`#train option[value="${eventId}"]`).count()).toBe(1);
        const started = performance.now();
        await joinTrain(page, eventId);
        await expect.poll(() => page.textContent("#position"), { timeout: 30_000 }).toContain("You have a seat");
        times.push(performance.now() - started);
        await page.context().close();
      }
      times.sort((a, b) => a - b);
      lines.push(`difficulty ${difficulty.toLocaleString("en")}: median join ${times[2]?.toFixed(0)} ms in Chromium (challenge, solve in a worker, Reserve; 5 joins: ${times.map((t) => t.toFixed(0)).join(", ")})`);
      expect((await api.getEvent({ eventId })).event?.counts?.joinedTotal).toBe(5);
    }
    console.log(lines.join("\n"));
  }, 120_000);
});

describe("a traveller signed in by the operator's site (#token=…)", () => {
  let key: CryptoKey;
  let jwks = "";
  beforeAll(async () => {
    const pair = await generateKeyPair("EdDSA", { extractable: true });
    key = pair.privateKey;
    jwks = JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: "site", alg: "EdDSA" }] });
  });
  const known = useTestService(async () => ({ userJwt: userJwtVerifier({ userJwtPublicKey: jwks, userJwtAudience: "ktx-web" }) }));
  const tokenFor = (sub: string): Promise<string> => new SignJWT({ sub }).setProtectedHeader({ alg: "EdDSA", kid: "site" }).setAudience("ktx-web").setExpirationTime("10m").sign(key);

  it("takes the token from the link at once, shows who is signed in, joins as that user, and asks before another user's link replaces them", async () => {
    const site = createClient(TicketQueueService, createGrpcTransport({ baseUrl: known.svc.baseUrl }));
    await site.createEvent({ eventId: "srt-id", name: "SRT signed in", capacity: 5 }, admin);
    const page = await open(`/#token=${await tokenFor("kim-1234")}`, PHONE, "en-US", known.svc.baseUrl);
    await expect.poll(() => page.textContent("#signed-in")).toBe("Signed in as kim-1234");
    expect(page.url()).not.toContain("token");
    await joinTrain(page, "srt-id");
    await expect.poll(() => page.textContent("#position")).toContain("You have a seat");
    expect(await page.inputValue("#resume-link")).not.toContain("token");
    expect((await site.getStatus({ eventId: "srt-id", userId: "kim-1234" }, admin)).status).toBe(1);

    // Someone else's link: refused in the dialog, kim stays; accepted, lee takes over this browser.
    const dialogs: string[] = [];
    page.once("dialog", (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    // (A link opened anew: a fragment change alone does not load the page again.)
    await page.goto("about:blank");
    await page.goto(`${known.svc.baseUrl}/#token=${await tokenFor("lee-5678")}`);
    await expect.poll(() => dialogs.length).toBe(1);
    expect(dialogs[0]).toContain("kim-1234");
    await expect.poll(() => page.textContent("#signed-in")).toBe("Signed in as kim-1234");
    page.once("dialog", (d) => void d.accept());
    await page.goto("about:blank");
    await page.goto(`${known.svc.baseUrl}/#token=${await tokenFor("lee-5678")}`);
    await expect.poll(() => page.textContent("#signed-in")).toBe("Signed in as lee-5678");
    await joinTrain(page, "srt-id");
    await expect.poll(() => page.textContent("#position")).toContain("You have a seat");
    expect((await site.getStatus({ eventId: "srt-id", userId: "lee-5678" }, admin)).status).toBe(1);
    // Kim's place is still kim's.
    expect((await site.getStatus({ eventId: "srt-id", userId: "kim-1234" }, admin)).status).toBe(1);
  });
});

describe("by keyboard alone", () => {
  it("a traveller joins with Tab and Enter, and focus lands on their place", async () => {
    await api.createEvent({ eventId: "mugunghwa-1", name: "Mugunghwa 1", capacity: 10 }, admin);
    const page = await open("/");
    await expect.poll(() => page.locator("#train option").count()).toBeGreaterThan(0);
    await page.keyboard.press("Tab"); // the language switch
    await page.keyboard.press("Tab"); // the train list
    expect(await page.evaluate<string>("document.activeElement.id")).toBe("train");
    await page.selectOption("#train", "mugunghwa-1"); // what arrow keys do in a focused list
    await page.keyboard.press("Tab");
    expect(await page.evaluate<string>("document.activeElement.id")).toBe("join");
    await page.keyboard.press("Enter");
    await expect.poll(() => page.textContent("#position")).toContain("You have a seat on Mugunghwa 1");
    expect(await page.evaluate<string>("document.activeElement.id")).toBe("status-heading");
  });
});

describe("operator dashboard", () => {
  it("signs in, follows the counts live, changes capacity, exports seat holders, resets with a confirmation", async () => {
    await api.createEvent({ eventId: "itx-9", name: "ITX 9", capacity: 2 }, admin);
    for (const user of ["a", "b", "c", "d", "e"]) await api.reserve({ eventId: "itx-9", userId: user });

    const page = await open("/admin", DESKTOP);
    await page.fill("#token", "wrong-token");
    await page.click("#sign-in-form button[type=submit]");
    await expect.poll(() => page.textContent("#error")).toBe("That token was refused.");
    await page.fill("#token", TEST_ADMIN_TOKEN);
    await page.click("#sign-in-form button[type=submit]");

    const cell = (col: string) => page.textContent(`tr[data-event="itx-9"] td[data-col="${col}"]`);
    await expect.poll(() => cell("reserved")).toBe("2");
    expect(await cell("waiting")).toBe("3");

    // A traveller joins elsewhere: the count moves without a reload (WatchEvent).
    await api.reserve({ eventId: "itx-9", userId: "f" });
    await expect.poll(() => cell("waiting"), { timeout: 5000 }).toBe("4");

    await page.click(`tr[data-event="itx-9"] th button`);
    await page.fill("#capacity", "5");
    await page.click("#capacity-form button[type=submit]");
    await expect.poll(() => page.textContent("#notice")).toBe("Seats set to 5; 3 promoted from the line.");
    await expect.poll(() => cell("reserved"), { timeout: 5000 }).toBe("5");
    expect(await cell("waiting")).toBe("1");
    expect(await cell("capacity")).toBe("5");
    await expect.poll(() => page.textContent("#chart-summary"), { timeout: 5000 }).toMatch(/Last second: \d+ joins, \d+ promotions\./);

    const download = page.waitForEvent("download");
    await page.click("#export");
    const csv = readFileSync(await (await download).path(), "utf8");
    expect(csv.trim().split("\r\n")).toEqual(["user_id,entry,hold_expires_at,seats", "a,1,,1", "b,2,,1", "c,3,,1", "d,4,,1", "e,5,,1"]);

    await page.fill("#user-id", "f");
    await page.click("#lookup-form button[type=submit]");
    await expect.poll(() => page.textContent("#user-status")).toBe("f: waiting, no. 1");
    await page.click("#cancel-user");
    await expect.poll(() => page.textContent("#notice")).toBe("f cancelled; 0 promoted.");

    expect(await accessibilityProblems(page)).toEqual([]);

    await page.click("#reset");
    await page.fill("#reset-confirm", "not-this-one");
    await page.click("#reset-form button[type=submit]");
    await expect.poll(() => page.textContent("#error")).toContain('send confirm="itx-9"');
    await page.fill("#reset-confirm", "itx-9");
    await page.click("#reset-form button[type=submit]");
    await expect.poll(() => page.textContent("#notice")).toBe("Reset: 5 seats and 0 places cleared.");
    await expect.poll(() => cell("reserved"), { timeout: 5000 }).toBe("0");

    // A few seconds of joins and cancels so the chart has something to show.
    for (let second = 0; second < 6; second++) {
      const joins = await Promise.all(Array.from({ length: 3 + second * 2 }, (_, i) => api.reserve({ eventId: "itx-9", userId: `rush-${second}-${i}` })));
      const seated = joins.find((r) => r.status === 1);
      if (seated) await api.cancel({ eventId: "itx-9", userId: seated.userId, ticket: seated.ticket });
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    await page.screenshot({ path: join(SHOTS, "dashboard-desktop.png"), fullPage: true });

    // A new train from the form; pause and resume; process the queue.
    await page.fill("#new-id", "ktx-new");
    await page.fill("#new-name", "KTX 새 열차");
    await page.fill("#new-capacity", "1");
    await page.fill("#new-max-waiting", "1000");
    await page.click("#create-form button[type=submit]");
    await expect.poll(() => page.textContent("#notice")).toBe("Created ktx-new.");
    expect((await api.getEvent({ eventId: "ktx-new" })).event).toMatchObject({ maxWaiting: 1000, powDifficulty: 0 });
    await expect.poll(() => page.textContent("#manage-heading")).toBe("Manage KTX 새 열차");
    await api.reserve({ eventId: "ktx-new", userId: "p1" });
    await api.reserve({ eventId: "ktx-new", userId: "p2" });
    await expect.poll(() => page.textContent('tr[data-event="ktx-new"] td[data-col="waiting"]'), { timeout: 5000 }).toBe("1");
    await page.click("#pause");
    await expect.poll(() => page.textContent("#notice")).toBe("Sales paused.");
    await expect.poll(() => page.textContent('tr[data-event="ktx-new"] td[data-col="state"]'), { timeout: 5000 }).toBe("paused");
    await expect(api.reserve({ eventId: "ktx-new", userId: "p3" })).rejects.toThrow(/paused/);
    await page.click("#pause");
    await expect.poll(() => page.textContent("#notice")).toBe("Sales resumed.");
    // Seats pass on by themselves (cancels, expiries, capacity): nothing is left for a manual run.
    await page.click("#process");
    await expect.poll(() => page.textContent("#notice")).toBe("0 promoted.");

    const phone = await open("/admin", PHONE, "ko-KR");
    await phone.fill("#token", TEST_ADMIN_TOKEN);
    await phone.click("#sign-in-form button[type=submit]");
    await expect.poll(() => phone.textContent("#events-heading")).toBe("열차");
    await phone.click(`tr[data-event="itx-9"] th button`);
    // Each train is a card on a phone: nothing scrolls sideways.
    expect(await phone.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(PHONE.width);
    expect(await phone.evaluate<number>("document.querySelector('.table-wrap').scrollWidth")).toBeLessThanOrEqual(PHONE.width);
    expect(await accessibilityProblems(phone)).toEqual([]);
    await phone.screenshot({ path: join(SHOTS, "dashboard-phone.png"), fullPage: true });
  });
});
