// The playground: paste a key, pick a model, embed texts through useEmbeddingsGenerateMutation,
// and see what came back (size, usage, cost, latency) and how similar the texts are.
import { OpenRouterCore } from "@openrouter/sdk/core.js";
import { useQuery } from "@tanstack/react-query";
import { useMemo, useRef, useState } from "react";

import { OpenRouterProvider, useEmbeddingsGenerateMutation } from "../../src/index.js";
import { Heatmap } from "./Heatmap.js";
import { cosineMatrix } from "./similarity.js";

// Relative to the page, so the playground also works behind a proxy that mounts it under a path.
const API_BASE = new URL("api/v1", document.baseURI).href;

type ModelInfo = {
  id: string;
  name?: string;
  embedding_dimensions?: number | null;
  pricing?: { prompt?: string };
};

const SAMPLE = [
  "The cat sat on the mat.",
  "A kitten is sitting on a rug.",
  "Quarterly revenue grew by 12 percent.",
].join("\n");

function useModels() {
  return useQuery({
    queryKey: ["embedrouter", "embeddings-models"],
    queryFn: async ({ signal }): Promise<ModelInfo[]> => {
      const res = await fetch(`${API_BASE}/embeddings/models`, { signal });
      if (!res.ok) {
        throw new Error(`GET /embeddings/models: HTTP ${res.status}`);
      }
      return ((await res.json()) as { data: ModelInfo[] }).data;
    },
    staleTime: 60_000,
  });
}

/** USD with every significant digit the number holds, never in exponent form. */
function formatCost(cost: number | undefined): string {
  if (cost === undefined) {
    return "n/a";
  }
  if (cost === 0) {
    return "$0";
  }
  return `$${cost.toFixed(12).replace(/0+$/, "").replace(/\.$/, "")}`;
}

function errorText(error: Error): string {
  // `name`, not `constructor.name`: minifying renames classes; the SDK sets `name` on each.
  return `${error.name}: ${error.message}`;
}

export function App() {
  const [apiKey, setApiKey] = useState("");
  // One client per key: the provider hands it to the hook.
  const client = useMemo(
    () => new OpenRouterCore({ apiKey, serverURL: API_BASE, retryConfig: { strategy: "none" } }),
    [apiKey],
  );
  return (
    <main>
      <header>
        <h1>embedrouter playground</h1>
        <p>Embeds texts through this server with <code>useEmbeddingsGenerateMutation</code>.</p>
      </header>
      {/* A form only so browsers treat the key as a password field; it is never submitted. */}
      <form onSubmit={(e) => e.preventDefault()}>
        <label className="field">
          <span>API key</span>
          <input
            id="api-key"
            type="password"
            autoComplete="off"
            spellCheck={false}
            placeholder="sk-er-v1-…"
            value={apiKey}
            onChange={(e) => setApiKey(e.target.value.trim())}
          />
        </label>
      </form>
      <OpenRouterProvider client={client}>
        <Embedder />
      </OpenRouterProvider>
    </main>
  );
}

function Embedder() {
  const models = useModels();
  const [model, setModel] = useState<string>("");
  const [text, setText] = useState(SAMPLE);
  const [latencyMs, setLatencyMs] = useState<number | null>(null);
  const abort = useRef<AbortController | null>(null);
  const mutation = useEmbeddingsGenerateMutation();

  const chosen = model || models.data?.[0]?.id || "";
  const texts = text.split("\n").map((t) => t.trim()).filter((t) => t !== "");

  const run = () => {
    abort.current?.abort();
    const controller = new AbortController();
    abort.current = controller;
    setLatencyMs(null);
    const started = performance.now();
    mutation.mutate(
      {
        request: { requestBody: { input: texts, model: chosen } },
        options: { signal: controller.signal },
      },
      { onSettled: () => setLatencyMs(performance.now() - started) },
    );
  };

  const data = typeof mutation.data === "string" ? undefined : mutation.data;
  const vectors = useMemo(
    () => data?.data.map((d) => (typeof d.embedding === "string" ? [] : d.embedding)) ?? [],
    [data],
  );
  const matrix = useMemo(() => cosineMatrix(vectors), [vectors]);
  const sentTexts = mutation.variables?.request.requestBody.input;
  const labels = Array.isArray(sentTexts) ? sentTexts.map(String) : [];

  return (
    <>
      <label className="field">
        <span>Model</span>
        <select id="model" value={chosen} onChange={(e) => setModel(e.target.value)}>
          {models.data?.map((m) => (
            <option key={m.id} value={m.id}>
              {m.id}
              {m.embedding_dimensions ? ` · ${m.embedding_dimensions} dims` : ""}
            </option>
          ))}
        </select>
        {models.isError && <em className="error">{models.error.message}</em>}
      </label>
      <label className="field">
        <span>Texts, one per line ({texts.length})</span>
        <textarea id="texts" rows={6} value={text} onChange={(e) => setText(e.target.value)} />
      </label>
      <div className="actions">
        <button
          id="embed"
          type="button"
          disabled={mutation.isPending || texts.length === 0 || !chosen}
          onClick={run}
        >
          {mutation.isPending ? "Embedding…" : "Embed"}
        </button>
        {mutation.isPending && (
          <button type="button" onClick={() => abort.current?.abort()}>
            Cancel
          </button>
        )}
      </div>
      {mutation.isError && (
        <p id="error" className="error" role="alert">
          {errorText(mutation.error)}
        </p>
      )}
      {data && mutation.isSuccess && (
        <section id="result" aria-live="polite">
          <dl className="stats">
            <div><dt>Model</dt><dd id="stat-model">{data.model}</dd></div>
            <div><dt>Vectors</dt><dd id="stat-count">{data.data.length}</dd></div>
            <div><dt>Dimensions</dt><dd id="stat-dimensions">{vectors[0]?.length ?? 0}</dd></div>
            <div><dt>Tokens</dt><dd id="stat-tokens">{data.usage?.promptTokens ?? "n/a"}</dd></div>
            <div><dt>Cost</dt><dd id="stat-cost">{formatCost(data.usage?.cost)}</dd></div>
            <div>
              <dt>Latency</dt>
              <dd id="stat-latency">{latencyMs === null ? "…" : `${latencyMs.toFixed(0)} ms`}</dd>
            </div>
          </dl>
          <h2>Cosine similarity</h2>
          <div className="matrix">
            <Heatmap matrix={matrix} labels={labels} />
            <ol className="legend">
              {labels.map((label, i) => (
                <li key={i}>{label}</li>
              ))}
            </ol>
          </div>
        </section>
      )}
    </>
  );
}
