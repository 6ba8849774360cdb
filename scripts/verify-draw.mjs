#!/usr/bin/env node
// Checks an event's pre-queue draw from outside, over the REST gateway:
//   npm run verify-draw -- <base-url> <event-id> [ticket]
// 1. the published seed matches the commitment published when the pre-queue opened;
// 2. the final seed is SHA-1(seed hex ":" chain head hex ":" beacon);
// 3. the published list of draw values is sorted and as long as the event's counts say;
// 4. given a ticket (verified against the service's JWKS), that entrant's draw value,
//    SHA-1(final seed hex ":" entry secret hex) cut to 13 hex digits, and its place in the list.
// Written apart from the service's own code on purpose: a verifier that called the
// service's function would check nothing. Needs only Node.
import { createHash, createPublicKey, verify } from "node:crypto";

const [baseArg, eventId, ticket] = process.argv.slice(2);
if (!baseArg || !eventId) {
  console.error("usage: npm run verify-draw -- <base-url> <event-id> [ticket]");
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, "");
const hex = (algorithm, data) => createHash(algorithm).update(data).digest("hex");
let failures = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures++;
};

async function get(path) {
  const res = await fetch(base + path);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${body.message ?? ""}`);
  return body;
}

const { event } = await get(`/v1/events/${encodeURIComponent(eventId)}`);
const draw = event.draw;
if (!draw) {
  console.log(`event ${eventId} has no pre-queue draw`);
  process.exit(2);
}
console.log(`event ${eventId}: draw ${draw.state}, commitment ${draw.commitment}`);
if (draw.state !== "DRAW_STATE_DONE") {
  console.log("the draw is not done yet: the seed is published when it is");
  process.exit(2);
}

check(/^[0-9a-f]{64}$/.test(draw.seed) && hex("sha256", Buffer.from(draw.seed, "hex")) === draw.commitment, "SHA-256(seed) is the commitment published before the draw");
const finalSeed = hex("sha1", `${draw.seed}:${draw.chain_head}:${draw.beacon}`);
check(finalSeed === draw.final_seed, `final seed = SHA-1(seed:chain head:beacon${draw.beacon_source ? `, beacon of ${draw.beacon_source}` : ", no beacon"})`);

const values = [];
for (let token = ""; ; ) {
  const page = await get(`/v1/events/${encodeURIComponent(eventId)}/draw/values?page_size=10000${token ? `&page_token=${token}` : ""}`);
  values.push(...page.values);
  token = page.next_page_token;
  if (!token) break;
}
check(values.length === draw.drawn, `the list has ${values.length} values, as the event's drawn count (${draw.drawn})`);
check(draw.drawn === draw.entrants - draw.left, `drawn = entrants (${draw.entrants}) - left before the draw (${draw.left})`);
check(values.every((v, i) => /^[0-9a-f]{13}$/.test(v) && (i === 0 || values[i - 1] <= v)), "the values are 13 hex digits each, in ascending order");

if (ticket) {
  const [header, payload, signature] = ticket.split(".");
  const claims = JSON.parse(Buffer.from(payload ?? "", "base64url").toString());
  const { keys } = await get("/.well-known/jwks.json");
  const kid = JSON.parse(Buffer.from(header ?? "", "base64url").toString()).kid;
  const jwk = keys.find((k) => k.kid === kid);
  check(
    jwk !== undefined && verify(null, Buffer.from(`${header}.${payload}`), createPublicKey({ key: jwk, format: "jwk" }), Buffer.from(signature ?? "", "base64url")),
    "the ticket is signed by the service's key",
  );
  check(claims.evt === eventId, `the ticket is for event ${eventId}`);
  if (typeof claims.drw !== "string") {
    check(false, "the ticket carries an entry secret (drw): it was issued to an entrant of the pre-queue");
  } else {
    const mine = hex("sha1", `${finalSeed}:${claims.drw}`).slice(0, 13);
    const first = values.indexOf(mine);
    check(first >= 0, `your draw value ${mine} is in the list`);
    if (first >= 0) {
      const ties = values.filter((v) => v === mine).length;
      console.log(`your drawn place: ${first + 1}${ties > 1 ? ` to ${first + ties} (a tie)` : ""} of ${values.length}`);
    }
  }
}
console.log(failures === 0 ? "the draw checks out" : `${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
