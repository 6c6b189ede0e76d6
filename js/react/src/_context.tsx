// The client every hook in this package uses, handed down through React context so that one
// `OpenRouterCore` (key, server URL, retry policy) serves the whole component tree.
import { createContext, useContext, type ReactNode } from "react";
import type { OpenRouterCore } from "@openrouter/sdk/core.js";

const OpenRouterContext = createContext<OpenRouterCore | null>(null);

/** Props of {@link OpenRouterProvider}. */
export type OpenRouterProviderProps = {
  client: OpenRouterCore;
  children: ReactNode;
};

/** Makes `client` available to the hooks below it. */
export function OpenRouterProvider(props: OpenRouterProviderProps): ReactNode {
  return (
    <OpenRouterContext.Provider value={props.client}>
      {props.children}
    </OpenRouterContext.Provider>
  );
}

/** The client from the nearest {@link OpenRouterProvider}; throws when there is none. */
export function useOpenRouterContext(): OpenRouterCore {
  const client = useContext(OpenRouterContext);
  if (client === null) {
    // The seed's exact message: code ported from it may match on the text.
    throw new Error(
      "SDK not initialized. Create an instance of OpenRouterCore and pass it to <OpenRouterProvider />.",
    );
  }
  return client;
}
