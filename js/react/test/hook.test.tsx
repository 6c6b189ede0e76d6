import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, renderHook, waitFor } from "@testing-library/react";
import type { ReactNode } from "react";
import { describe, expect, it } from "vitest";
import type { OpenRouterCore } from "@openrouter/sdk/core.js";
import { RequestAbortedError } from "@openrouter/sdk/models/errors/httpclienterrors.js";
import { UnauthorizedResponseError } from "@openrouter/sdk/models/errors";

import * as pkg from "@embedrouter/react";
import {
  OpenRouterProvider,
  buildEmbeddingsGenerateMutation,
  mutationKeyEmbeddingsGenerate,
  useEmbeddingsGenerateMutation,
  useOpenRouterContext,
} from "@embedrouter/react";
import { MODEL, client, cosine, golden } from "./live.js";

function setup(core: OpenRouterCore) {
  // No TanStack retries: the SDK owns retrying (the seed's REACT_QUERY.md said the same).
  const queryClient = new QueryClient({ defaultOptions: { mutations: { retry: false } } });
  const wrapper = ({ children }: { children: ReactNode }) => (
    <QueryClientProvider client={queryClient}>
      <OpenRouterProvider client={core}>{children}</OpenRouterProvider>
    </QueryClientProvider>
  );
  return { queryClient, wrapper };
}

const TEXTS = ["hello", "How do I set a timeout on sockets?", "Ünïcödé façade — naïve café 東京 🚀"];

describe("@embedrouter/react against a live embedrouter", () => {
  it("exports exactly the seed's embeddings surface", () => {
    expect(Object.keys(pkg).sort()).toEqual([
      "OpenRouterProvider",
      "buildEmbeddingsGenerateMutation",
      "mutationKeyEmbeddingsGenerate",
      "useEmbeddingsGenerateMutation",
      "useOpenRouterContext",
    ]);
  });

  it("embeds texts and returns the model's vectors", async () => {
    for (const t of TEXTS) {
      expect(golden.has(t), `golden file lacks ${t}`).toBe(true);
    }
    const { wrapper } = setup(client());
    // A hook-level signal that never fires must not get in the way of the call.
    const idle = new AbortController();
    const { result } = renderHook(
      () => useEmbeddingsGenerateMutation({ signal: idle.signal }), { wrapper });
    act(() => {
      result.current.mutate({ request: { requestBody: { input: TEXTS, model: MODEL } } });
    });
    await waitFor(() => expect(["success", "error"]).toContain(result.current.status));
    expect(result.current.error).toBeNull();
    const data = result.current.data;
    if (data === undefined || typeof data === "string") {
      throw new Error(`expected a parsed response, got ${String(data)}`);
    }
    expect(data.model.toLowerCase()).toBe(MODEL);
    expect(data.data.map((d) => d.index)).toEqual([0, 1, 2]);
    data.data.forEach((d, i) => {
      const vector = d.embedding;
      if (typeof vector === "string") {
        throw new Error("expected a float vector");
      }
      expect(vector).toHaveLength(384);
      // The same vectors sentence-transformers computes for these texts.
      expect(cosine(vector, golden.get(TEXTS[i]!)!)).toBeGreaterThan(0.999);
    });
    expect(data.usage?.promptTokens).toBeGreaterThan(0);
    expect(data.usage?.totalTokens).toBe(data.usage?.promptTokens);
  });

  it("surfaces a 401 as the SDK's UnauthorizedResponseError in the hook's error", async () => {
    const { wrapper } = setup(client("sk-er-v1-not-a-real-key"));
    const { result } = renderHook(() => useEmbeddingsGenerateMutation(), { wrapper });
    act(() => {
      result.current.mutate({ request: { requestBody: { input: "hello", model: MODEL } } });
    });
    await waitFor(() => expect(result.current.isError).toBe(true));
    const error = result.current.error;
    expect(error).toBeInstanceOf(UnauthorizedResponseError);
    expect((error as UnauthorizedResponseError).statusCode).toBe(401);
    expect(result.current.data).toBeUndefined();
  });

  it("aborts through the call's signal", async () => {
    const { wrapper } = setup(client());
    const { result } = renderHook(() => useEmbeddingsGenerateMutation(), { wrapper });
    const controller = new AbortController();
    act(() => {
      result.current.mutate({
        request: { requestBody: { input: TEXTS, model: MODEL } },
        options: { signal: controller.signal },
      });
      // Aborted in the same tick as the call: no response can have arrived yet.
      controller.abort();
    });
    await waitFor(() => expect(result.current.isError).toBe(true));
    expect(result.current.error).toBeInstanceOf(RequestAbortedError);
  });

  it("aborts through the hook's signal, combined with the call's", async () => {
    const { wrapper } = setup(client());
    const hookLevel = new AbortController();
    hookLevel.abort();
    const { result } = renderHook(
      () => useEmbeddingsGenerateMutation({ fetchOptions: { signal: hookLevel.signal } }),
      { wrapper },
    );
    act(() => {
      result.current.mutate({
        request: { requestBody: { input: "hello", model: MODEL } },
        options: { signal: new AbortController().signal },
      });
    });
    await waitFor(() => expect(result.current.isError).toBe(true));
    expect(result.current.error).toBeInstanceOf(RequestAbortedError);
  });

  it("runs under the seed's mutation key", async () => {
    const key = ["@openrouter/sdk", "Embeddings", "generate"];
    expect(mutationKeyEmbeddingsGenerate()).toEqual(key);
    const core = client();
    expect(buildEmbeddingsGenerateMutation(core).mutationKey).toEqual(key);

    const { queryClient, wrapper } = setup(core);
    const { result } = renderHook(() => useEmbeddingsGenerateMutation(), { wrapper });
    act(() => {
      result.current.mutate({ request: { requestBody: { input: "hello", model: MODEL } } });
    });
    await waitFor(() => expect(result.current.isSuccess).toBe(true));
    // The key is what QueryClient defaults and filters match on, by prefix.
    const found = queryClient.getMutationCache().findAll({ mutationKey: ["@openrouter/sdk"] });
    expect(found).toHaveLength(1);
    expect(found[0]!.options.mutationKey).toEqual(key);
    expect(queryClient.getMutationCache().findAll({ mutationKey: ["other"] })).toHaveLength(0);
  });

  it("buildEmbeddingsGenerateMutation works without React", async () => {
    const { mutationFn } = buildEmbeddingsGenerateMutation(client());
    const out = await mutationFn({ request: { requestBody: { input: "hello", model: MODEL } } });
    if (typeof out === "string") {
      throw new Error("expected a parsed response");
    }
    expect(out.data).toHaveLength(1);
    await expect(
      buildEmbeddingsGenerateMutation(client("sk-er-v1-nope")).mutationFn({
        request: { requestBody: { input: "hello", model: MODEL } },
      }),
    ).rejects.toBeInstanceOf(UnauthorizedResponseError);
  });

  it("useOpenRouterContext throws the seed's message outside a provider", () => {
    expect(() => renderHook(() => useOpenRouterContext())).toThrow(
      "SDK not initialized. Create an instance of OpenRouterCore and pass it to <OpenRouterProvider />.",
    );
  });
});
