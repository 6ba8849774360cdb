import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

/**
 * The CPUs this process may use: the cores it sees (availableParallelism), or
 * fewer when its cgroup caps CPU time (a container or pod with a CPU limit).
 * Node counts the host's cores, so a pod limited to 1 CPU on a 16-core node
 * would otherwise fork 16 workers that share one CPU's worth of time.
 *
 * cgroup v2: `cpu.max` ("<quota> <period>" or "max <period>") of the process's
 * cgroup and each of its parents; v1: `cpu.cfs_quota_us` / `cpu.cfs_period_us`
 * of the cpu controller's hierarchy. The tightest limit wins, rounded down,
 * and at least 1. (Written here: no npm package reads both versions.)
 *
 * `root` prefixes every path read (tests give a directory laid out like /).
 */
export function usableCpus(root = ""): number {
  const limit = cgroupCpuLimit(root);
  const cores = availableParallelism();
  return limit === undefined ? cores : Math.max(1, Math.min(cores, Math.floor(limit)));
}

/** CPUs' worth of time the cgroup allows (fractional), or undefined when unlimited or unknown. */
export function cgroupCpuLimit(root = ""): number | undefined {
  const read = (path: string): string | undefined => {
    try {
      return readFileSync(`${root}${path}`, "utf8").trim();
    } catch {
      return undefined;
    }
  };
  const limits: number[] = [];
  for (const line of (read("/proc/self/cgroup") ?? "").split("\n")) {
    const [id, controllers = "", path = "/"] = line.split(":");
    if (id === "0" && controllers === "") {
      for (const dir of selfAndParents(path)) {
        const [quota, period] = (read(`/sys/fs/cgroup${dir}/cpu.max`) ?? "").split(/\s+/);
        if (quota !== undefined && quota !== "max") push(limits, Number(quota), Number(period));
      }
    } else if (controllers.split(",").includes("cpu")) {
      for (const mount of [`/sys/fs/cgroup/${controllers}`, "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]) {
        for (const dir of selfAndParents(path)) {
          push(limits, Number(read(`${mount}${dir}/cpu.cfs_quota_us`)), Number(read(`${mount}${dir}/cpu.cfs_period_us`)));
        }
      }
    }
  }
  return limits.length === 0 ? undefined : Math.min(...limits);
}

function push(limits: number[], quota: number, period: number): void {
  if (Number.isFinite(quota) && Number.isFinite(period) && quota > 0 && period > 0) limits.push(quota / period);
}

/** "/a/b" → "/a/b", "/a", "" (the hierarchy's root). */
function selfAndParents(path: string): string[] {
  const parts = path.split("/").filter((p) => p !== "");
  const dirs: string[] = [];
  for (let n = parts.length; n >= 0; n--) dirs.push(n === 0 ? "" : `/${parts.slice(0, n).join("/")}`);
  return dirs;
}
