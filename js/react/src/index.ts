// The package's public face: everything the seed's `@openrouter/sdk/react-query` index exported
// for embeddings. tests/exports.test.ts pins this list.
export { OpenRouterProvider, useOpenRouterContext } from "./_context.js";
export type { OpenRouterProviderProps } from "./_context.js";
export {
  buildEmbeddingsGenerateMutation,
  mutationKeyEmbeddingsGenerate,
  useEmbeddingsGenerateMutation,
} from "./embeddingsGenerate.js";
export type {
  EmbeddingsGenerateMutationData,
  EmbeddingsGenerateMutationVariables,
} from "./embeddingsGenerate.js";
export type { MutationHookOptions, RequestOptions } from "./_types.js";
