// The page's side of proof of work: get a challenge for the train, solve it in a
// worker (pow-worker.ts), and encode the solution as Reserve's pow_solution
// (base64 of ALTCHA's JSON payload, as the ALTCHA widget submits it).
import type { GetChallengeResponse } from "../../gen/ticketqueue/v1/ticket_queue_pb.js";
import type { PowMessage } from "./pow-worker.js";

export function solveInWorker(c: GetChallengeResponse, onProgress: (fraction: number) => void): Promise<string> {
  const worker = new Worker(new URL("./pow-worker.ts", import.meta.url), { type: "module" });
  return new Promise<string>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<PowMessage>) => {
      const message = event.data;
      if ("progress" in message) {
        onProgress(message.progress);
        return;
      }
      worker.terminate();
      if (message.number === null) reject(new Error("the challenge has no solution"));
      else resolve(btoa(JSON.stringify({ algorithm: c.algorithm, challenge: c.challenge, number: message.number, salt: c.salt, signature: c.signature })));
    };
    worker.onerror = (event) => {
      worker.terminate();
      reject(new Error(event.message));
    };
    worker.postMessage({ challenge: c.challenge, salt: c.salt, maxNumber: c.maxNumber });
  });
}
