// `useEmbeddingsGenerateMutation`: the React Query hook that the seed documented under
// `@openrouter/sdk/react-query/embeddingsGenerate.js`, rebuilt on the SDK's published standalone
// function. Same names, same signatures, same mutation key.
import { type MutationKey, type UseMutationResult, useMutation } from "@tanstack/react-query";
import type { OpenRouterCore } from "@openrouter/sdk/core.js";
import { embeddingsGenerate } from "@openrouter/sdk/funcs/embeddingsGenerate.js";
import type * as operations from "@openrouter/sdk/models/operations";

import { useOpenRouterContext } from "./_context.js";
import { mergeRequestOptions } from "./_options.js";
import type { MutationHookOptions, RequestOptions } from "./_types.js";

/** What `mutate` takes: the SDK request, and optionally per-call request options. */
export type EmbeddingsGenerateMutationVariables = {
  request: operations.CreateEmbeddingsRequest;
  options?: RequestOptions;
};

/** What the mutation resolves to: the SDK's parsed embeddings response. */
export type EmbeddingsGenerateMutationData = operations.CreateEmbeddingsResponse;

/**
 * Submit an embedding request.
 *
 * `options` are TanStack mutation options plus SDK request options; the latter apply to every
 * call and merge with the per-call `options` passed to `mutate`. A failed call rejects with the
 * SDK's typed error (for example `UnauthorizedResponseError`), so it is the hook's `error`.
 */
export function useEmbeddingsGenerateMutation(
  options?: MutationHookOptions<
    EmbeddingsGenerateMutationData,
    Error,
    EmbeddingsGenerateMutationVariables
  >,
): UseMutationResult<
  EmbeddingsGenerateMutationData,
  Error,
  EmbeddingsGenerateMutationVariables
> {
  const client = useOpenRouterContext();
  return useMutation({
    ...buildEmbeddingsGenerateMutation(client, options),
    ...options,
  });
}

/** `["@openrouter/sdk", "Embeddings", "generate"]`, as in the seed (for defaults and filters). */
export function mutationKeyEmbeddingsGenerate(): MutationKey {
  return ["@openrouter/sdk", "Embeddings", "generate"];
}

/**
 * The key and function behind {@link useEmbeddingsGenerateMutation}, for use outside React
 * (`queryClient.getMutationCache().build(...)`, tests) or in a custom hook.
 */
export function buildEmbeddingsGenerateMutation(
  client: OpenRouterCore,
  // The hook passes its whole options object; TanStack's fields in it (onSuccess, retry, ...)
  // are not RequestInit members, and `fetch` ignores them, as the seed's version did.
  hookOptions?: RequestOptions,
): {
  mutationKey: MutationKey;
  mutationFn: (
    variables: EmbeddingsGenerateMutationVariables,
  ) => Promise<EmbeddingsGenerateMutationData>;
} {
  return {
    mutationKey: mutationKeyEmbeddingsGenerate(),
    mutationFn: async function embeddingsGenerateMutationFn({
      request,
      options,
    }: EmbeddingsGenerateMutationVariables): Promise<EmbeddingsGenerateMutationData> {
      const result = await embeddingsGenerate(
        client,
        request,
        mergeRequestOptions(hookOptions, options),
      );
      // The SDK returns a Result rather than throwing; TanStack needs a rejection to set `error`.
      if (!result.ok) {
        throw result.error;
      }
      return result.value;
    },
  };
}
