import type { UseMutationOptions } from "@tanstack/react-query";
import type { RequestOptions } from "@openrouter/sdk/lib/sdks.js";

export type { RequestOptions };

/**
 * What a mutation hook accepts: TanStack's mutation options (less the key and function, which
 * the hook supplies) plus the SDK's per-request options (retries, timeout, signal, headers...).
 */
export type MutationHookOptions<TData, TError, TVariables> =
  & Omit<UseMutationOptions<TData, TError, TVariables>, "mutationKey" | "mutationFn">
  & RequestOptions;
