import type { Socket } from "node:net";
import { OpenCounts } from "../open-counts.js";

/**
 * MAX_CONNECTIONS_PER_IP: open connections from one address, per process.
 * Off (0) by default: a whole carrier's travellers can share one address
 * behind its NAT, so a cap suits deployments that know their clients.
 */
export class ConnectionsPerIp {
  private readonly open = new OpenCounts<string>();

  constructor(private readonly max: number) {}

  /** Counts the socket until it closes; false (and the socket destroyed) past the cap. */
  admit(socket: Socket): boolean {
    if (this.max <= 0) return true;
    const address = socket.remoteAddress ?? "unknown";
    if (this.open.get(address) >= this.max) {
      socket.destroy();
      return false;
    }
    this.open.add(address);
    socket.once("close", () => this.open.remove(address));
    return true;
  }
}
