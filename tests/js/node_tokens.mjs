// Make user tokens with @engagespot/node's generateUserToken (RS256, {sub: "user:<id>", apiKey}).
//
// env: HERALD_API_KEY, HERALD_API_SECRET, HERALD_SIGNING_KEY (PEM private key),
//      HERALD_TOKEN_USERS (comma-separated identifiers)
import { env, run } from "./lib.mjs";
import { EngagespotClient } from "@engagespot/node";

run(async () => {
  const client = EngagespotClient({
    apiKey: env("HERALD_API_KEY"),
    apiSecret: env("HERALD_API_SECRET"),
    signingKey: env("HERALD_SIGNING_KEY"),
  });
  const tokens = {};
  for (const user of env("HERALD_TOKEN_USERS").split(",")) {
    tokens[user] = client.generateUserToken(user);
  }
  return { tokens };
});
