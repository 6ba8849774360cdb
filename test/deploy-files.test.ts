import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

// No Docker engine runs here, so the files are checked for the structure that matters.

describe("Dockerfile", () => {
  const text = readFileSync("Dockerfile", "utf8");
  const stages = text.split(/^FROM /m).slice(1);
  const runtime = stages.at(-1) ?? "";

  it("is a multi-stage build on Node 22 that installs with npm ci", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage).toMatch(/^node:22/);
    expect(stages[0]).toMatch(/RUN npm ci/);
    expect(runtime).toMatch(/RUN npm ci --omit=dev/);
    expect(runtime).toMatch(/COPY --from=build \/app\/dist/);
  });

  it("copies into the build stage every folder the build reads", () => {
    const copied = new Set([...(stages[0] ?? "").matchAll(/^COPY (?!--)(.+) \S+$/gm)].flatMap((m) => (m[1] ?? "").split(" ")));
    // tsconfig.build.json's sources, read from it (bench is optional: not part of the image), and the web app.
    const { include } = JSON.parse(readFileSync("tsconfig.build.json", "utf8")) as { include: string[] };
    for (const needed of ["tsconfig.json", "tsconfig.build.json", ...include.filter((dir) => dir !== "bench"), "web", "package-lock.json"]) {
      expect(copied, needed).toContain(needed);
    }
  });

  it("runs as a non-root user with a healthcheck on the service port", () => {
    const user = /^USER (\S+)/m.exec(runtime)?.[1];
    expect(user).toBeDefined();
    expect(["root", "0"]).not.toContain(user);
    expect(runtime).toMatch(/^HEALTHCHECK .*\n?.*\/health/m);
    expect(runtime).toMatch(/^EXPOSE 8000$/m);
    expect(runtime).toMatch(/NODE_ENV=production/);
    expect(runtime).toMatch(/CMD \["node", "dist\/src\/main.js"\]/);
  });
});

describe("docker-compose.yml", () => {
  const compose = parse(readFileSync("docker-compose.yml", "utf8")) as {
    services: Record<string, { image?: string; command?: string[]; healthcheck?: { test: string[] }; depends_on?: Record<string, { condition: string }>; ports?: string[]; environment?: Record<string, string> }>;
  };
  const redis = compose.services["redis"];
  const app = compose.services["ticket-queue"];

  it("runs Redis 7 with AOF and a healthcheck", () => {
    expect(redis?.image).toMatch(/^redis:7/);
    expect(redis?.command?.join(" ")).toContain("--appendonly yes");
    expect(redis?.healthcheck?.test.join(" ")).toContain("redis-cli ping");
  });

  it("starts the service on port 8000 once Redis is healthy, with the demo token", () => {
    expect(app?.depends_on?.["redis"]?.condition).toBe("service_healthy");
    expect(app?.ports).toContain("8000:8000");
    expect(app?.environment?.["ADMIN_TOKEN"]).toBe("my-secret-token");
    expect(app?.environment?.["REDIS_URL"]).toBe("redis://redis:6379");
    expect(app?.healthcheck?.test.join(" ")).toContain("/health");
  });
});
