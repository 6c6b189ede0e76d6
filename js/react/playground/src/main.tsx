import "./zod-jitless.js";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { App } from "./App.js";
import "./style.css";

// The SDK retries by itself (here: not at all); TanStack must not retry on top of it.
const queryClient = new QueryClient({
  defaultOptions: { mutations: { retry: false }, queries: { retry: 1 } },
});
queryClient.setMutationDefaults(["@openrouter/sdk"], { retry: false });

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <App />
    </QueryClientProvider>
  </StrictMode>,
);
