// The live embedrouter the tests talk to. tests/clients/test_react_hook.py starts one and passes
// it in; there is no fallback, so a missing server fails loudly instead of skipping.
import { readFileSync } from "node:fs";
import { OpenRouterCore } from "@openrouter/sdk/core.js";

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run these tests through tests/clients/test_react_hook.py, ` +
        "or export EMBEDROUTER_URL (…/api/v1), EMBEDROUTER_KEY and EMBEDROUTER_GOLDEN",
    );
  }
  return value;
}

export const serverURL = required("EMBEDROUTER_URL");
export const apiKey = required("EMBEDROUTER_KEY");
export const MODEL = "sentence-transformers/all-minilm-l6-v2";

/** sentence-transformers' own vectors for some inputs (tests/data golden file), by input. */
export const golden: Map<string, number[]> = new Map(
  readFileSync(required("EMBEDROUTER_GOLDEN"), "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as { input: string; embedding: number[] })
    .map((g) => [g.input, g.embedding]),
);

/** A client that never retries: a test that expects an error must see the first one. */
export function client(key: string = apiKey): OpenRouterCore {
  return new OpenRouterCore({ apiKey: key, serverURL, retryConfig: { strategy: "none" } });
}

export function cosine(a: readonly number[], b: readonly number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return dot / Math.sqrt(na * nb);
}
