import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { describe, expect, it } from "vitest";

// The layers' rules (docs/architecture.md), checked over the import specifiers of
// src/. (dependency-cruiser would do this, but it cannot parse TypeScript 7 here.)

const STATE = ["queue", "redis", "tickets", "lua", "watch"];

/** The layer of a file under src/: its first folder, or the file's own name at the top. */
function layerOf(file: string): string {
  const [first = "", second] = file.split("/");
  return second === undefined ? first.replace(/\.ts$/, "") : first;
}

interface Import {
  /** A file of src/ as a path relative to src/, or a package or builtin as written. */
  spec: string;
  /** A file of src/ (not a package, a builtin, or gen/ outside src/). */
  local: boolean;
}

/** What each file imports, however: import/export ... from, a bare import, import(), require(). */
function importsOf(file: string, source: string): Import[] {
  const pattern = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["'`]([^"'`]+)["'`]|(?:^|\n)\s*import\s+["'`]([^"'`]+)["'`]|\b(?:import|require)\s*\(\s*["'`]([^"'`]+)["'`]\s*\)/g;
  return [...source.matchAll(pattern)].map((m) => {
    const spec = m[1] ?? m[2] ?? m[3] ?? "";
    if (!spec.startsWith(".")) return { spec, local: false };
    const path = normalize(join(dirname(file), spec)).replace(/\.js$/, ".ts");
    return { spec: path, local: !path.startsWith("..") };
  });
}

/** node:http and its kin, with or without the node: prefix. */
const NETWORK_BUILTINS = /^(node:)?(http|https|http2|net|tls)$/;

/** Every broken rule, as "file: what". */
export function violations(files: ReadonlyMap<string, string>): string[] {
  const found: string[] = [];
  const importersOfBoth: string[] = [];
  for (const [file, source] of files) {
    const layer = layerOf(file);
    const imports = importsOf(file, source);
    // The other layers of src/ this file imports (its own does not count).
    const layersImported = new Set(imports.filter((i) => i.local).map((i) => layerOf(i.spec)));
    layersImported.delete(layer);
    for (const { spec, local } of imports) {
      const target = local ? layerOf(spec) : "";
      if (STATE.includes(layer)) {
        if (spec.startsWith("@connectrpc/")) found.push(`${file}: the state layer imports ${spec}`);
        if (["rpc", "server", "gateway", "process", "app", "main"].includes(target)) found.push(`${file}: the state layer imports ${spec}`);
      }
      if (layer === "rpc" && NETWORK_BUILTINS.test(spec)) found.push(`${file}: the RPC layer imports ${spec}`);
      if (layer === "rpc" && ["server", "gateway", "process", "app", "main"].includes(target)) found.push(`${file}: the RPC layer imports ${spec}`);
      if (layer === "server" && target === "gateway") found.push(`${file}: the server imports the gateway (${spec})`);
      // The gateway's only neighbours in src/: the RPC surface, the body reader and its budget.
      if (layer === "gateway" && local && !["gateway", "rpc"].includes(target) && spec !== "server/http-body.ts" && spec !== "server/body-budget.ts") {
        found.push(`${file}: the gateway imports ${spec}, not the RPC surface`);
      }
    }
    if (layersImported.has("server") && layersImported.has("gateway")) importersOfBoth.push(file);
  }
  for (const file of importersOfBoth) if (file !== "app.ts") found.push(`${file}: imports both the server and the gateway (only the builder, app.ts, may)`);
  return found;
}

function sourcesUnder(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (path: string): void => {
    for (const entry of readdirSync(path)) {
      const full = join(path, entry);
      if (statSync(full).isDirectory()) walk(full);
      else if (entry.endsWith(".ts")) files.set(relative(dir, full), readFileSync(full, "utf8"));
    }
  };
  walk(dir);
  return files;
}

describe("the layers' rules", () => {
  it("hold in src/", () => {
    const files = sourcesUnder("src");
    expect(files.size).toBeGreaterThan(40);
    expect(violations(files)).toEqual([]);
  });

  it("are broken by a fixture that breaks each of them (the check can fail)", () => {
    const fixture = new Map([
      ["queue/bad.ts", 'import { ConnectError } from "@connectrpc/connect";\nimport { x } from "../rpc/errors.js";\nimport "../main.js";'],
      ["watch/bad.ts", 'const c = await import("@connectrpc/connect");\nconst r = require("../server/server.js");'],
      ["rpc/bad.ts", 'import * as http from "node:http";\nimport https from "https";\nimport { y } from "../server/server.js";\nexport * from "../main.js";'],
      ["server/bad.ts", 'import { createRestGateway } from "../gateway/rest-gateway.js";'],
      ["gateway/bad.ts", 'import { QueueStore } from "../queue/queue-store.js";\nimport { z } from "../server/one-port.js";\nimport { ok } from "../server/http-body.js";\nimport { log } from "../log.js";\nimport { m } from "../observability/metrics.js";\nimport { fine } from "../rpc/errors.js";\nimport { gen } from "../../gen/x_pb.js";'],
      ["process/bad.ts", 'import { a } from "../server/server.js";\nimport { b } from "../gateway/rest-gateway.js";'],
    ]);
    expect(violations(fixture)).toEqual([
      "queue/bad.ts: the state layer imports @connectrpc/connect",
      "queue/bad.ts: the state layer imports rpc/errors.ts",
      "queue/bad.ts: the state layer imports main.ts",
      "watch/bad.ts: the state layer imports @connectrpc/connect",
      "watch/bad.ts: the state layer imports server/server.ts",
      "rpc/bad.ts: the RPC layer imports node:http",
      "rpc/bad.ts: the RPC layer imports https",
      "rpc/bad.ts: the RPC layer imports server/server.ts",
      "rpc/bad.ts: the RPC layer imports main.ts",
      "server/bad.ts: the server imports the gateway (gateway/rest-gateway.ts)",
      "gateway/bad.ts: the gateway imports queue/queue-store.ts, not the RPC surface",
      "gateway/bad.ts: the gateway imports server/one-port.ts, not the RPC surface",
      "gateway/bad.ts: the gateway imports log.ts, not the RPC surface",
      "gateway/bad.ts: the gateway imports observability/metrics.ts, not the RPC surface",
      "process/bad.ts: imports both the server and the gateway (only the builder, app.ts, may)",
    ]);
  });
});
