import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { Metrics } from "../observability/metrics.js";
import { sameSecret } from "../rpc/secrets.js";

/** GET /metrics: the Prometheus text, behind `Authorization: Bearer <token>` when a token is set. */
export async function serveMetrics(metrics: Metrics, token: string | undefined, req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): Promise<void> {
  const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
  if (token !== undefined && (bearer === undefined || !sameSecret(bearer, token))) {
    res.writeHead(401, { "content-type": "text/plain", "www-authenticate": 'Bearer realm="metrics"' });
    res.end("metrics need Authorization: Bearer <METRICS_TOKEN>\n");
    return;
  }
  try {
    const text = await metrics.exposition();
    res.writeHead(200, { "content-type": metrics.registry.contentType });
    res.end(text);
  } catch (err: unknown) {
    res.writeHead(503, { "content-type": "text/plain" });
    res.end(`metrics unavailable: ${String(err)}\n`);
  }
}
