// node dist/bench/connect-floor.js [connections]: how fast this machine sets up
// loopback TCP connections at all: N clients connect at once to a bare echo
// server in the same process (no HTTP, no service) and each waits for one byte
// back. The floor under bench/burst.ts's joins/s: no server joins travellers
// faster than the machine opens their connections. At most ~9,000 here (one
// process holds both ends; `ulimit -n` bounds it).
import { connect, createServer, type AddressInfo } from "node:net";

const N = Number(process.argv[2] ?? 6000);
const server = createServer((socket) => socket.on("data", (d: Buffer) => socket.write(d)));
await new Promise<void>((resolve) => server.listen({ port: 0, host: "127.0.0.1", backlog: 65_535 }, resolve));
const { port } = server.address() as AddressInfo;
const started = performance.now();
const answered: number[] = [];
await new Promise<void>((resolve) => {
  for (let i = 0; i < N; i++) {
    const socket = connect({ port, host: "127.0.0.1", localAddress: `127.0.0.${2 + (i % 2)}` });
    socket.on("error", () => undefined);
    socket.write("x");
    socket.once("data", () => {
      answered.push(performance.now() - started);
      if (answered.length === N) resolve();
    });
  }
});
answered.sort((a, b) => a - b);
const at = (q: number): string => ((answered[Math.floor((answered.length - 1) * q)] ?? 0) / 1000).toFixed(2);
console.log(`${N} loopback connections, each echoing one byte: all in ${at(1)} s (half by ${at(0.5)} s): ${Math.round(N / ((answered.at(-1) ?? 1) / 1000))} connections/s`);
process.exit(0);
