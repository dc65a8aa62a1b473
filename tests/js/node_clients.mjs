// The two @engagespot/node backend clients the node drivers use, on Herald's /v3: this app's
// (HERALD_API_KEY, HERALD_API_SECRET) and another app's (HERALD_OTHER_API_KEY,
// HERALD_OTHER_API_SECRET), for the cross-app attempts.
import { EngagespotClient } from "@engagespot/node";
import { env } from "./lib.mjs";

export function nodeClients() {
  // With baseUrl set, the SDK sends its v4 calls (workflows) to the same base: /v3.
  const baseUrl = `${env("HERALD_URL")}/v3`;
  const client = EngagespotClient({
    apiKey: env("HERALD_API_KEY"),
    apiSecret: env("HERALD_API_SECRET"),
    baseUrl,
  });
  const stranger = EngagespotClient({
    apiKey: env("HERALD_OTHER_API_KEY"),
    apiSecret: env("HERALD_OTHER_API_SECRET"),
    baseUrl,
  });
  return { client, stranger };
}
