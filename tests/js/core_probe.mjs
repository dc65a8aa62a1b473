// Probe what one @engagespot/core identity can reach, without expecting success:
// connect, the first inbox page, and one notification id (HERALD_PROBE_ID) by id and by
// markAsRead. Must be bundled like core_flow.mjs.
//
// env: HERALD_URL, HERALD_API_KEY, HERALD_USER_ID, HERALD_USER_TOKEN (optional),
//      HERALD_PROBE_ID
import { env, fetchCall, run } from "./lib.mjs";
import { coreInstance } from "./core_instance.mjs";

run(async () => {
  const engagespot = coreInstance();
  const id = env("HERALD_PROBE_ID");
  return {
    connect: await fetchCall(engagespot.app.connect()),
    list: await fetchCall(engagespot.notification.getByPage({ pageNo: 1, limit: 15 })),
    getById: await fetchCall(engagespot.notification.getById(id)),
    markAsRead: await fetchCall(engagespot.notification.markAsRead(id)),
    profile: await engagespot.preferences.setProfileAttributes({ probed: true }),
  };
});
