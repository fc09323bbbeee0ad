// Preloaded by bunfig.toml before every test file: the time a test may take unless it says otherwise. Bun's
// default of 5 s is too short for a test that starts real programs (pinghub, redis-server, nginx) on a loaded
// two-core CI machine, where starting one Bun process alone can take a second or more. A test file may still
// set its own (setDefaultTimeout) or a test its own ({ timeout }).

import { setDefaultTimeout } from "bun:test";
import { UNTIL_TIMEOUT_MS } from "./until.ts";

/** Longer than a wait in until() may take, so that a wait that fails says what it waited for. */
export const TEST_TIMEOUT_MS = UNTIL_TIMEOUT_MS + 5_000;

setDefaultTimeout(TEST_TIMEOUT_MS);
