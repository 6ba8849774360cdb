import cluster, { type Worker } from "node:cluster";
import { randomUUID } from "node:crypto";
import { AggregatorRegistry, type Registry } from "prom-client";
import { sendQuietly } from "../process/send-quietly.js";

/** One process's metrics as prom-client exports them for combining. */
type MetricsJson = Awaited<ReturnType<Registry["getMetricsAsJSON"]>>;

/** How long the primary waits for a worker's metrics: one that is wedged counts with what it answered last. */
const WORKER_ANSWER_MS = 2000;

/** `read`'s answer, read again only once it is `ms` old; concurrent callers share one reading. */
export function atMostEvery<T>(ms: number, read: () => Promise<T>): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | undefined;
  return () => {
    const now = performance.now();
    if (!last || now - last.at >= ms) last = { at: now, value: read() };
    return last.value;
  };
}

/** Scrapes waiting for the primary's answer, by id: one "message" listener serves them all (one each warned past ten). */
const pendingScrapes = new Map<string, (text: string) => void>();

/** In a cluster worker: every worker's metrics combined, from the primary. */
export function askPrimary(): Promise<string> {
  const id = randomUUID();
  if (pendingScrapes.size === 0) process.on("message", onPrimaryReply);
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error("the primary did not answer for metrics")), 5000);
    function done(err?: Error, text?: string): void {
      clearTimeout(timer);
      pendingScrapes.delete(id);
      if (pendingScrapes.size === 0) process.off("message", onPrimaryReply);
      if (err) reject(err);
      else resolve(text ?? "");
    }
    pendingScrapes.set(id, (text) => done(undefined, text));
    // (the primary gone: the send fails, and this call with it, not the process)
    process.send?.({ type: "tq:metrics", id }, undefined, undefined, (err: Error | null) => {
      if (err) done(err);
    });
  });
}

function onPrimaryReply(message: unknown): void {
  const reply = message as { type?: string; id?: string; text?: string };
  if (reply.type === "tq:metrics-reply" && reply.id !== undefined) pendingScrapes.get(reply.id)?.(reply.text ?? "");
}

/** In a cluster worker: answers the primary's requests for this process's metrics. */
export function shareWithPrimary(registry: Registry): void {
  process.on("message", (message: { type?: string; id?: string }) => {
    if (message.type !== "tq:metrics-get") return;
    void registry.getMetricsAsJSON().then((metrics) => sendQuietly(process, { type: "tq:metrics-json", id: message.id, metrics }));
  });
}

/**
 * In the cluster primary: answers workers' metrics requests with the metrics of
 * every worker that serves, combined (prom-client's aggregators). Not prom-client's
 * own gathering, which waits for every worker, a starting one included, and failed
 * the scrape when one did not answer within 5 s. A worker that does not answer in
 * time counts with its last answer; the counters and histograms of workers that
 * exited stay in the sums, so a restart does not make the combined counters go
 * down (which Prometheus would read as a reset of them all).
 */
export function serveClusterMetrics(serving: () => Worker[]): void {
  const last = new Map<number, MetricsJson>();
  let gone: Promise<MetricsJson> = Promise.resolve([]);
  cluster.on("exit", (worker) => {
    const final = last.get(worker.id);
    last.delete(worker.id);
    if (!final) return;
    // (prom-client's types call `type` an enum; at run time it is the exposition's word)
    const totals = final.filter((metric) => ["counter", "histogram"].includes(String(metric.type)));
    gone = gone.then((before) => AggregatorRegistry.aggregate([before, totals]).getMetricsAsJSON());
  });
  const answers = new Map<string, (metrics: MetricsJson) => void>();
  cluster.on("message", (_worker, message: { type?: string; id?: string; metrics?: MetricsJson }) => {
    if (message.type === "tq:metrics-json" && message.id !== undefined) answers.get(message.id)?.(message.metrics ?? []);
  });
  // True when the worker answered in time; its answer is then its `last`.
  const ask = (worker: Worker): Promise<boolean> =>
    new Promise((resolve) => {
      const id = randomUUID();
      const done = (metrics: MetricsJson | undefined): void => {
        clearTimeout(timer);
        answers.delete(id);
        // (an answer can come after its worker's exit, which moved its `last` to `gone`)
        if (metrics && !worker.isDead()) last.set(worker.id, metrics);
        resolve(metrics !== undefined);
      };
      const timer = setTimeout(() => done(undefined), WORKER_ANSWER_MS);
      answers.set(id, done);
      sendQuietly(worker, { type: "tq:metrics-get", id });
    });
  // Gathered at most once a second, whatever the scrape rate: /metrics is open by default,
  // and each gathering costs every worker (400 scrapes at once took 3 s).
  const combined = atMostEvery(1000, async () => {
    const workers = serving();
    const answered = await Promise.all(workers.map(ask));
    // Every worker not exited, with what it answered last (`gone` has the exited ones'): fresh
    // answers first, since a gauge combined by "first" takes the first.
    const fresh = new Set(workers.filter((_, i) => answered[i]).map((worker) => worker.id));
    const byFreshness = [...last].sort(([a], [b]) => Number(fresh.has(b)) - Number(fresh.has(a)));
    return AggregatorRegistry.aggregate([...byFreshness.map(([, metrics]) => metrics), await gone]).metrics();
  });
  cluster.on("message", (worker, message: { type?: string; id?: string }) => {
    if (message.type !== "tq:metrics") return;
    combined().then(
      (text) => sendQuietly(worker, { type: "tq:metrics-reply", id: message.id, text }),
      (err: unknown) => sendQuietly(worker, { type: "tq:metrics-reply", id: message.id, text: `# metrics unavailable: ${String(err)}\n` }),
    );
  });
}
