// Imported first by main.tsx, so it runs before the SDK's modules build their schemas.
//
// The SDK validates with zod, whose fast path compiles code with `new Function`. The page's CSP
// forbids that (the page takes an API key), and zod's probe for it, run while the schemas are
// built at import time, would log a CSP violation on every load.
import { config } from "zod/v4/core";

config({ jitless: true });
