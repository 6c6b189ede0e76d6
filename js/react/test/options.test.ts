// Pure checks of how hook-level and call-level request options merge (no server needed).
import { describe, expect, it } from "vitest";
import { combineSignals, mergeRequestOptions } from "../src/_options.js";

describe("mergeRequestOptions", () => {
  it("lets the call's fields win and merges headers name by name, from both places", () => {
    const merged = mergeRequestOptions(
      { timeoutMs: 5, headers: { "x-a": "hook", "x-b": "hook" }, fetchOptions: { cache: "no-store" } },
      { timeoutMs: 9, fetchOptions: { headers: { "x-b": "call" } } },
    );
    expect(merged.timeoutMs).toBe(9);
    const headers = new Headers(merged.headers);
    expect(headers.get("x-a")).toBe("hook");
    expect(headers.get("x-b")).toBe("call");
    expect(merged.fetchOptions).toEqual({ cache: "no-store" });
  });

  it("leaves signal and headers unset when neither level has them", () => {
    const merged = mergeRequestOptions({ retries: { strategy: "none" } }, undefined);
    expect(merged).toEqual({ retries: { strategy: "none" } });
  });

  it("aborts when either level's signal aborts, flat or under fetchOptions", () => {
    for (const where of ["hook-flat", "hook-fetch", "call-flat", "call-fetch"] as const) {
      const fired = new AbortController();
      const idle = new AbortController();
      const pick = (w: string) => (w === where ? fired.signal : idle.signal);
      const merged = mergeRequestOptions(
        { signal: pick("hook-flat"), fetchOptions: { signal: pick("hook-fetch") } },
        { signal: pick("call-flat"), fetchOptions: { signal: pick("call-fetch") } },
      );
      expect(merged.signal?.aborted).toBe(false);
      expect(merged.fetchOptions).toBeUndefined();
      fired.abort(where);
      expect(merged.signal?.aborted, where).toBe(true);
      expect(merged.signal?.reason).toBe(where);
    }
  });

  it("combineSignals passes a single signal through unchanged", () => {
    const only = new AbortController().signal;
    expect(combineSignals(undefined, only, null)).toBe(only);
    expect(combineSignals()).toBeUndefined();
  });
});
