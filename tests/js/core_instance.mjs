// The @engagespot/core instance the bundled core drivers drive, as a browser inbox would with
// the socket off: HERALD_URL (root: core appends /v3 itself), HERALD_API_KEY, HERALD_USER_ID,
// HERALD_USER_TOKEN (optional: secure mode).
import { createInstance } from "@engagespot/core";
import { env, optionalEnv } from "./lib.mjs";

export function coreInstance() {
  const userToken = optionalEnv("HERALD_USER_TOKEN");
  return createInstance({
    apiKey: env("HERALD_API_KEY"),
    userId: env("HERALD_USER_ID"),
    ...(userToken ? { userToken } : {}),
    baseUrl: env("HERALD_URL"),
    disableAutoStart: true,
    disableWebPush: true,
  });
}
