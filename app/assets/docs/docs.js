// Starts Swagger UI (swagger-ui-bundle.js, loaded before this) on the API document.
// No validator badge (it would call a public validator), and "Try it out" sends requests
// to this origin only, with the key given under "Authorize".
"use strict";

(() => {
  const root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({
    url: root.dataset.document,
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    layout: "BaseLayout",
    presets: [window.SwaggerUIBundle.presets.apis],
    defaultModelsExpandDepth: 0,
    docExpansion: "list",
    tryItOutEnabled: false,
    persistAuthorization: false,
  });
})();
