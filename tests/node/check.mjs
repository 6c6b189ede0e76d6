// Exercise the real @openrouter/sdk against an embedrouter server; print one JSON report.
import { OpenRouter } from "@openrouter/sdk";
import { OpenRouterCore } from "@openrouter/sdk/core.js";
import { embeddingsGenerate } from "@openrouter/sdk/funcs/embeddingsGenerate.js";

const [serverURL, apiKey] = process.argv.slice(2);
const model = "sentence-transformers/all-minilm-l6-v2";
const noRetry = { strategy: "none" };

const sdk = new OpenRouter({ apiKey, serverURL, retryConfig: noRetry });
const res = await sdk.embeddings.generate({ requestBody: { input: ["hello", "world"], model } });

const core = new OpenRouterCore({ apiKey, serverURL, retryConfig: noRetry });
const ok = await embeddingsGenerate(core, { requestBody: { input: "hello", model } });
const bad = await embeddingsGenerate(core, { requestBody: { input: [], model } });
const stranger = new OpenRouterCore({ apiKey: "sk-er-v1-nope", serverURL, retryConfig: noRetry });
const unauth = await embeddingsGenerate(stranger, { requestBody: { input: "x", model } });

const models = [];
for await (const page of await sdk.embeddings.listModels()) {
  models.push(...page.result.data.map((m) => m.id));
}

const describe = (r) => r.ok
  ? { ok: true, count: r.value.data.length, dims: r.value.data[0].embedding.length }
  : { ok: false, name: r.error.constructor.name, statusCode: r.error.statusCode,
      message: r.error.message };

console.log(JSON.stringify({
  generate: { count: res.data.length, dims: res.data[0].embedding.length,
              promptTokens: res.usage.promptTokens },
  standaloneOk: describe(ok),
  standaloneError: describe(bad),
  unauthorized: describe(unauth),
  listModels: models,
}));
