import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The browser app: three pages (the waiting page, the dashboard, the REST API's docs), built into dist/web and served by the service itself.
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/",
  build: {
    outDir: fileURLToPath(new URL("../dist/web", import.meta.url)),
    emptyOutDir: true,
    // No inline scripts or styles: the pages run under a strict Content-Security-Policy.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    // Swagger UI (the /docs page only) is one 1.5 MB bundle; the travellers' pages stay small.
    chunkSizeWarningLimit: 1700,
    rollupOptions: {
      input: {
        waiting: fileURLToPath(new URL("index.html", import.meta.url)),
        dashboard: fileURLToPath(new URL("admin.html", import.meta.url)),
        docs: fileURLToPath(new URL("docs.html", import.meta.url)),
      },
    },
  },
  server: {
    // `npm run web:dev`: RPCs go to the service at TQ_SERVICE_URL (default: a local `npm start`).
    proxy: { "/ticketqueue.v1.TicketQueueService": process.env["TQ_SERVICE_URL"] ?? "http://127.0.0.1:8000" },
  },
});
