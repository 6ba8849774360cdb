import * as http2 from "node:http2";

/** One request of a load run. */
export interface LoadRequest {
  path: string;
  /** "grpc": success is grpc-status 0 (in trailers, or trailers-only headers); "http": a 2xx status. */
  kind: "grpc" | "http";
  method?: string;
  contentType: string;
  headers?: Record<string, string>;
  body: Buffer;
}

export interface LoadOptions {
  /** e.g. http://127.0.0.1:8000 (cleartext HTTP/2, prior knowledge). */
  url: string;
  connections: number;
  /** Requests in flight on each connection. */
  concurrency: number;
  requests: number;
  /** Open loop: send at this many requests per second regardless of answers (ignores `concurrency`). */
  rate?: number;
  /** The i-th request (0-based). */
  request: (i: number) => LoadRequest;
}

export interface LoadResult {
  requests: number;
  ok: number;
  errors: number;
  /** grpc-status or HTTP status of the failures, with counts. */
  errorCodes: Record<string, number>;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
}

/**
 * A small HTTP/2 load generator that, unlike h2load, reads grpc-status: a gRPC
 * error inside an HTTP 200 counts as an error. Closed loop: each connection
 * keeps `concurrency` requests in flight until `requests` have been sent.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const latencies = new Float64Array(options.requests);
  const errorCodes: Record<string, number> = {};
  let next = 0;
  let done = 0;
  let ok = 0;
  const started = performance.now();

  const sessions = await Promise.all(
    Array.from({ length: options.connections }, () =>
      new Promise<http2.ClientHttp2Session>((resolve, reject) => {
        const session = http2.connect(options.url, { maxSessionMemory: 64 });
        session.once("connect", () => resolve(session));
        session.once("error", reject);
      }),
    ),
  );

  const fail = (code: string): void => {
    errorCodes[code] = (errorCodes[code] ?? 0) + 1;
  };

  await new Promise<void>((resolve) => {
    const launch = (session: http2.ClientHttp2Session): void => {
      if (next >= options.requests) return;
      const i = next++;
      const r = options.request(i);
      const t0 = performance.now();
      const stream = session.request({
        ":method": r.method ?? "POST",
        ":path": r.path,
        "content-type": r.contentType,
        ...(r.kind === "grpc" ? { te: "trailers" } : {}),
        ...r.headers,
      });
      let status = 0;
      let grpcStatus: string | undefined;
      stream.on("response", (headers) => {
        status = Number(headers[":status"]);
        const s = headers["grpc-status"];
        if (typeof s === "string") grpcStatus = s;
      });
      stream.on("trailers", (trailers) => {
        const s = trailers["grpc-status"];
        if (typeof s === "string") grpcStatus = s;
      });
      stream.on("data", () => undefined);
      const finish = (): void => {
        latencies[i] = performance.now() - t0;
        if (r.kind === "grpc" ? status === 200 && grpcStatus === "0" : status >= 200 && status < 300) ok++;
        else fail(r.kind === "grpc" ? `grpc-status ${grpcStatus ?? "none"} (http ${status})` : `http ${status}`);
        if (++done === options.requests) resolve();
        else if (options.rate === undefined) launch(session);
      };
      stream.once("close", finish);
      stream.once("error", () => undefined);
      stream.end(r.body);
    };
    if (options.rate === undefined) {
      for (const session of sessions) for (let c = 0; c < options.concurrency; c++) launch(session);
      return;
    }
    // Open loop: a tick every millisecond (as often as Node's timers go) sends what
    // the schedule says is due; coarser ticks send bursts, whose queueing the
    // percentiles would then measure instead of the server.
    const rate = options.rate;
    let round = 0;
    const timer = setInterval(() => {
      const due = Math.min(options.requests, Math.floor(((performance.now() - started) / 1000) * rate));
      while (next < due) {
        const session = sessions[round++ % sessions.length];
        if (session) launch(session);
      }
      if (next >= options.requests) clearInterval(timer);
    }, 1);
  });

  const seconds = (performance.now() - started) / 1000;
  for (const session of sessions) session.close();
  const sorted = latencies.sort();
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return {
    requests: options.requests,
    ok,
    errors: options.requests - ok,
    errorCodes,
    seconds,
    rps: options.requests / seconds,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    p999Ms: at(0.999),
  };
}
