import { brotliDecompressSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { rawRequest } from "./helpers/raw-http.js";
import { useTestService } from "./helpers/service.js";

const env = useTestService();

const get = (path: string, headers: Record<string, string> = {}, method = "GET") => rawRequest(env.svc.port, method, path, headers);

describe("the web app on the service's own port", () => {
  it("serves both pages with a strict CSP, compressed, revalidated by ETag", async () => {
    const page = await get("/", { "accept-encoding": "gzip, br" });
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.headers["content-encoding"]).toBe("br");
    expect(page.headers["content-security-policy"]).toContain("script-src 'self'");
    expect(page.headers["cache-control"]).toBe("no-cache");
    const html = brotliDecompressSync(page.body).toString();
    expect(html).toContain('id="join-form"');
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1] ?? "";
    const asset = await get(script);
    expect(asset.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(asset.headers["cache-control"]).toContain("immutable");
    expect(asset.headers["content-encoding"]).toBeUndefined();

    const again = await get("/", { "if-none-match": String(page.headers["etag"]) });
    expect(again.status).toBe(304);
    expect((await get("/admin")).body.toString()).toContain('id="sign-in-form"');
    const head = await get("/admin", {}, "HEAD");
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
  });

  it("serves nothing but the built files, and leaves the API paths alone", async () => {
    // A path that climbs is refused as such (400), one that names no file is 404: never a file outside.
    for (const path of ["/../package.json", "/assets/../../package.json", "/%2e%2e/package.json", "/index.html/.."]) {
      expect((await get(path)).status, path).toBe(400);
    }
    for (const path of ["/assets/", "/package.json", "/assets/%2Fpackage.json"]) expect((await get(path)).status, path).toBe(404);
    expect((await get("/health")).status).toBe(200);
    expect((await get("/", {}, "POST")).status).toBe(404);
  });
});
