// Merging hook-level and call-level SDK request options.
//
// @openrouter/sdk 1.x accepts RequestInit fields both flat on RequestOptions and (deprecated)
// under `fetchOptions`; flat fields win where both are set. So each source may carry a signal
// and headers in two places, and a plain spread would silently drop one of them.
import type { RequestOptions } from "./_types.js";

/** One signal that aborts when any of `signals` does; undefined when none is given. */
export function combineSignals(
  ...signals: Array<AbortSignal | null | undefined>
): AbortSignal | undefined {
  const live = signals.filter((s): s is AbortSignal => s != null);
  if (live.length <= 1) {
    return live[0];
  }
  if (typeof AbortSignal.any === "function") {
    return AbortSignal.any(live);
  }
  // Runtimes without AbortSignal.any (Safari < 17.4, Node < 20.3).
  const controller = new AbortController();
  for (const s of live) {
    if (s.aborted) {
      controller.abort(s.reason);
      break;
    }
    s.addEventListener("abort", () => controller.abort(s.reason), { once: true });
  }
  return controller.signal;
}

function mergeHeaders(...sources: Array<HeadersInit | undefined>): Headers | undefined {
  const present = sources.filter((h): h is HeadersInit => h != null);
  if (present.length === 0) {
    return undefined;
  }
  const merged = new Headers();
  for (const source of present) {
    new Headers(source).forEach((value, name) => merged.set(name, value));
  }
  return merged;
}

/**
 * Call-level options over hook-level ones: later fields win, headers merge name by name, and the
 * abort signals of both levels are combined so either one cancels the request.
 */
export function mergeRequestOptions(
  hook: RequestOptions | undefined,
  call: RequestOptions | undefined,
): RequestOptions {
  const merged: RequestOptions = { ...hook, ...call };
  const fetchOptions = { ...hook?.fetchOptions, ...call?.fetchOptions };
  const signal = combineSignals(
    hook?.fetchOptions?.signal, hook?.signal, call?.fetchOptions?.signal, call?.signal,
  );
  const headers = mergeHeaders(
    hook?.fetchOptions?.headers, hook?.headers, call?.fetchOptions?.headers, call?.headers,
  );
  delete merged.signal;
  delete merged.headers;
  delete fetchOptions.signal;
  delete fetchOptions.headers;
  if (signal !== undefined) {
    merged.signal = signal;
  }
  if (headers !== undefined) {
    merged.headers = headers;
  }
  if (Object.keys(fetchOptions).length > 0) {
    merged.fetchOptions = fetchOptions;
  } else {
    delete merged.fetchOptions;
  }
  return merged;
}
