import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Every file starts its own redis-server; two at a time suits a 2-core machine.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // npm run test:cluster: the integration files against one real Redis Cluster.
    globalSetup: process.env["TQ_TEST_ON_CLUSTER"] === "1" ? ["test/helpers/cluster-global-setup.ts"] : [],
  },
});
