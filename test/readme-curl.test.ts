import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { useTestService } from "./helpers/service.js";

// The README's curl calls, run word for word (only the port changes), and their
// answers compared with the responses the README shows.

interface Example {
  command: string;
  status: number;
  body: Record<string, unknown>;
}

function readmeExamples(): Example[] {
  const readme = readFileSync("README.md", "utf8");
  const section = readme.slice(readme.indexOf("### curl (REST gateway)"), readme.indexOf("### Live status"));
  // A command may continue over lines ending in a backslash.
  const lines = section.replace(/\\\n\s*/g, "").split("\n");
  const examples: Example[] = [];
  for (const [i, line] of lines.entries()) {
    if (!line.startsWith("curl ")) continue;
    const answer = /^# (?:HTTP (\d{3}) )?(\{.*\})$/.exec(lines[i + 1] ?? "");
    if (!answer?.[2]) throw new Error(`README: no response shown after ${line}`);
    examples.push({ command: line, status: Number(answer[1] ?? 200), body: JSON.parse(answer[2]) as Record<string, unknown> });
  }
  return examples;
}

const env = useTestService({ capacity: 500, adminToken: "my-secret-token" });

describe("README curl calls", () => {
  const examples = readmeExamples();

  it("include the old service's six calls", () => {
    expect(examples.length).toBeGreaterThanOrEqual(6);
    for (const path of ["/reserve", "/status/user_123", "/process_queue", "/admin/reset", "/health"]) {
      expect(examples.some((e) => e.command.includes(`http://localhost:8000${path}`))).toBe(true);
    }
  });

  it("answer what the README shows, in order", async () => {
    for (const example of examples) {
      const command = example.command.replaceAll("localhost:8000", `127.0.0.1:${env.svc.port}`);
      // Asynchronously: the server answering curl runs in this process.
      const { stdout: output } = await promisify(execFile)("sh", ["-c", `${command} -s -w '\\n%{http_code}'`], { encoding: "utf8" });
      const [body = "", status = ""] = output.split(/\n(?=\d{3}$)/);
      expect(Number(status), command).toBe(example.status);
      const actual = JSON.parse(body) as Record<string, unknown>;
      expect(Object.keys(actual).sort(), command).toEqual(Object.keys(example.body).sort());
      for (const [key, shown] of Object.entries(example.body)) {
        const generated = ["redis_latency_ms", "ticket", "hold_expires_at"].includes(key) || (key === "user_id" && /^[0-9a-f-]{36}$/.test(String(shown)));
        if (generated) expect(typeof actual[key], `${command}: ${key}`).toBe(typeof shown);
        else expect(actual[key], `${command}: ${key}`).toEqual(shown);
      }
    }
  });
});
