import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants as zlib, gzipSync } from "node:zlib";

/**
 * Where `npm run build` puts the browser app (web/, built by Vite): dist/web at
 * the package root, whether this file runs compiled (dist/src/server) or as
 * TypeScript (src/server, in tests).
 */
export const BUILT_WEB_DIR = fileURLToPath(new URL(import.meta.url.includes("/dist/src/") ? "../../web/" : "../../dist/web/", import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
  ".woff2": "font/woff2",
};

// The pages call this origin only (gRPC-web), and load nothing inline.
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/** Clean paths of the pages. */
const PAGES: Record<string, string> = { "/": "/index.html", "/admin": "/admin.html", "/docs": "/docs.html" };

interface StaticFile {
  body: Buffer;
  /** Compressed once at start: most travellers are on phones. */
  br: Buffer;
  gzip: Buffer;
  headers: Record<string, string>;
}

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

/**
 * The built web app, read into memory once at start (a few hundred KiB): only
 * files that exist at start can be served, so no request path ever reaches the
 * file system. Answers GET of its own paths and returns true; anything else is
 * left to the RPC routes (false). Absent build: `/` says how to build it.
 */
export function createWebApp(dir = BUILT_WEB_DIR): { handle: (req: Request, res: Response) => boolean; built: boolean; dir: string } {
  const files = new Map<string, StaticFile>();
  if (existsSync(join(dir, "index.html"))) {
    for (const path of walk(dir)) {
      const url = "/" + relative(dir, path).split(sep).join("/");
      const body = readFileSync(path);
      // Vite names assets by content hash: cache them for good; pages revalidate.
      const immutable = url.startsWith("/assets/");
      files.set(url, {
        body,
        // Quality 5: about 6 ms for the whole app at every worker's start, where the
        // default 11 took 250 ms for 9 % smaller files.
        br: brotliCompressSync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 5 } }),
        gzip: gzipSync(body),
        headers: {
          vary: "accept-encoding",
          "content-type": CONTENT_TYPES[extname(path)] ?? "application/octet-stream",
          "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
          etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
          ...SECURITY_HEADERS,
        },
      });
    }
  }
  const built = files.size > 0;

  const handle = (req: Request, res: Response): boolean => {
    if (req.method !== "GET") return false;
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const file = files.get(PAGES[path] ?? path);
    if (!file) {
      if (built || PAGES[path] === undefined) return false;
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end("The web app is not built: run `npm run build`.\n");
      return true;
    }
    if (req.headers["if-none-match"] === file.headers["etag"]) {
      res.writeHead(304, withVary(res, file.headers));
      res.end();
      return true;
    }
    const accepted = String(req.headers["accept-encoding"] ?? "");
    const [encoding, body] = /\bbr\b/.test(accepted) ? ["br", file.br] : /\bgzip\b/.test(accepted) ? ["gzip", file.gzip] : ["identity", file.body];
    const headers = { ...file.headers, "content-length": String(body.length), ...(encoding === "identity" ? {} : { "content-encoding": encoding }) };
    res.writeHead(200, withVary(res, headers));
    res.end(body);
    return true;
  };
  return { handle, built, dir };
}

/** The file's headers, its Vary added to what CORS set (Origin): a cache must keep an answer per origin and encoding. */
function withVary(res: Response, headers: Record<string, string>): Record<string, string> {
  const set = res.getHeader("vary");
  return set === undefined ? headers : { ...headers, vary: [String(set), headers["vary"]].filter(Boolean).join(", ") };
}

function* walk(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* walk(path);
    else yield path;
  }
}
