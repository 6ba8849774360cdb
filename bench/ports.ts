import { createServer } from "node:net";
import { isListening } from "../src/redis/local-redis.js";

/** A port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

/** Resolves once something accepts connections on the port (10 s at most). */
export async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await isListening("127.0.0.1", port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}
