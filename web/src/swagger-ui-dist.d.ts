// swagger-ui-dist ships no types; the one call the docs page makes.
declare module "swagger-ui-dist/swagger-ui-es-bundle.js" {
  const SwaggerUIBundle: (options: { url: string; dom_id: string; validatorUrl: null; deepLinking: boolean }) => unknown;
  export default SwaggerUIBundle;
}
declare module "swagger-ui-dist/swagger-ui.css";
