import type { Socket } from "node:net";

/**
 * MAX_CONNECTIONS_PER_IP: open connections from one address, per process.
 * Off (0) by default: a whole carrier's travellers can share one address
 * behind its NAT, so a cap suits deployments that know their clients.
 */
export class ConnectionsPerIp {
  private readonly open = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Counts the socket until it closes; false (and the socket destroyed) past the cap. */
  admit(socket: Socket): boolean {
    if (this.max <= 0) return true;
    const address = socket.remoteAddress ?? "unknown";
    const n = this.open.get(address) ?? 0;
    if (n >= this.max) {
      socket.destroy();
      return false;
    }
    this.open.set(address, n + 1);
    socket.once("close", () => {
      const left = (this.open.get(address) ?? 1) - 1;
      if (left <= 0) this.open.delete(address);
      else this.open.set(address, left);
    });
    return true;
  }
}
