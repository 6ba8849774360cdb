// Gets a proof-of-work challenge for an event over REST, solves it with
// altcha-lib, and prints the pow_solution for Reserve (what the waiting page does
// in a Web Worker):
//   node scripts/pow-solve.mjs http://localhost:8000 ktx-202 [bearer-token]
import { solveChallenge } from "altcha-lib/v1";

const [baseUrl, eventId, token] = process.argv.slice(2);
if (!baseUrl || !eventId) {
  console.error("usage: pow-solve.mjs <base-url> <event-id> [user token]");
  process.exit(2);
}
const res = await fetch(`${baseUrl}/v1/events/${encodeURIComponent(eventId)}/challenge`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
const c = await res.json();
if (!res.ok) {
  console.error(`GetChallenge: HTTP ${res.status} ${JSON.stringify(c)}`);
  process.exit(1);
}
const found = await solveChallenge(c.challenge, c.salt, c.algorithm, c.max_number).promise;
if (!found) {
  console.error("no solution found");
  process.exit(1);
}
console.log(btoa(JSON.stringify({ algorithm: c.algorithm, challenge: c.challenge, number: found.number, salt: c.salt, signature: c.signature })));
