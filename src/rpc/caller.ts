import { createContextKey, createContextValues, type ContextValues } from "@connectrpc/connect";
import { sameSecret } from "./secrets.js";

/** The TCP peer of the request, set by every entry point (Connect, the gRPC fast path, REST). */
export const peerAddressKey = createContextKey<string | undefined>(undefined, { description: "peer address" });

export function peerContext(address: string | undefined): ContextValues {
  return createContextValues().set(peerAddressKey, address);
}

/** The header a calling service puts its credential in (SERVICE_TOKENS). */
export const SERVICE_TOKEN_HEADER = "x-service-token";

export interface CallerOptions {
  /** name -> token: a service presenting the token is limited as `svc:<name>`. */
  serviceTokens: ReadonlyMap<string, string>;
  /** Peers whose X-Forwarded-For is believed (load balancers, the ingress). */
  trustedProxies: ReadonlySet<string>;
}

/**
 * Who is calling, for per-caller limits: a service credential first, then the
 * signed-in user (the `sub` of a verified user token, when given), else the client IP. X-Forwarded-For is read only when the TCP peer is a trusted proxy,
 * and then only up to the first address that is not one (the right-most
 * untrusted hop), so a client cannot choose its own identity.
 */
export function callerIdentity(header: Headers, peer: string | undefined, options: CallerOptions, user?: string): string {
  const token = header.get(SERVICE_TOKEN_HEADER);
  const service = token === null ? undefined : serviceName(token, options);
  if (service !== undefined) return `svc:${service}`;
  if (user !== undefined) return `user:${user}`;
  let address = normalize(peer ?? "unknown");
  if (options.trustedProxies.has(address)) {
    const hops = (header.get("x-forwarded-for") ?? "")
      .split(",")
      .map((h) => normalize(h.trim()))
      .filter((h) => h !== "");
    while (hops.length > 0 && options.trustedProxies.has(address)) address = hops.pop() ?? address;
  }
  return `ip:${address}`;
}

/** The service whose SERVICE_TOKENS credential `token` is, compared in constant time; undefined for none. */
export function serviceName(token: string, options: CallerOptions): string | undefined {
  for (const [name, expected] of options.serviceTokens) {
    if (sameSecret(token, expected)) return name;
  }
  return undefined;
}

function normalize(address: string): string {
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}

