// TQ_TEST_ON_CLUSTER=1 (npm run test:cluster): one real Redis Cluster (3 masters,
// 3 replicas) for the whole run; every service a test starts uses it instead of
// the file's own redis-server. Each service has its own key prefix, as always.
import type { TestProject } from "vitest/node";
import { startTestCluster } from "./redis-cluster.js";

declare module "vitest" {
  export interface ProvidedContext {
    clusterNodes: string[];
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Small hashes as real tables, as events.test.ts sets on its own server: HSCAN then pages.
  const cluster = await startTestCluster(["--hash-max-listpack-entries", "16"]);
  project.provide("clusterNodes", cluster.nodes);
  return () => cluster.dispose();
}
