import { configure } from "@testing-library/react";

// waitFor gives up after 1 s by default; a live server on a busy 2-core CI box may take longer
// to answer, and a timeout there would be a flaky failure, not a finding.
configure({ asyncUtilTimeout: 30_000 });
