// The REST API's documentation page (/docs): Swagger UI, bundled from
// swagger-ui-dist into our own files (no CDN, no inline script or style: the
// strict Content-Security-Policy holds), reading the document the service serves.
import SwaggerUIBundle from "swagger-ui-dist/swagger-ui-es-bundle.js";
import "swagger-ui-dist/swagger-ui.css";

SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  // No call to the public validator service: the page talks to this origin only.
  validatorUrl: null,
  deepLinking: true,
});
