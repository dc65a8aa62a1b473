// Drive Herald with @engagespot/core, unchanged, as a browser inbox would (socket off).
// Must be bundled: esbuild core_flow.mjs --bundle --platform=node --format=cjs
//                  --main-fields=module,main
//
// env: HERALD_URL (root: core appends /v3 itself), HERALD_API_KEY, HERALD_USER_ID,
//      HERALD_USER_TOKEN (optional: secure mode), HERALD_CATEGORY_ID (a category to set
//      preferences on)
import { env, fetchCall, run } from "./lib.mjs";
import { coreInstance } from "./core_instance.mjs";

run(async (expect) => {
  const engagespot = coreInstance();
  const inbox = engagespot.notification;
  const prefs = engagespot.preferences;
  const out = {};
  const ok = (step, result) => {
    expect(step, result.ok);
    return result;
  };

  out.connect = ok("connect", await fetchCall(engagespot.app.connect()));
  out.first = ok("getByPage", await fetchCall(inbox.getByPage({ pageNo: 1, limit: 10 })));
  const ids = Object.fromEntries((out.first.data?.data ?? []).map((n) => [n.title, String(n.id)]));
  out.ids = ids;
  out.pageTwo = ok("getByPage 2", await fetchCall(inbox.getByPage({ pageNo: 2, limit: 4 })));

  // Ids go in as strings (what the React component passes) and as {id} objects.
  out.getById = ok("getById", await fetchCall(inbox.getById(ids.one)));
  out.markAsRead = ok("markAsRead", await fetchCall(inbox.markAsRead(ids.two)));
  out.markAsReadObject = ok(
    "markAsRead {id}",
    await fetchCall(inbox.markAsRead({ id: ids.three })),
  );
  out.changeState = ok(
    "changeState",
    await fetchCall(inbox.changeState({ id: ids.four, state: "accepted" })),
  );
  out.remove = ok("remove", await fetchCall(inbox.remove({ id: ids.five })));
  out.afterSingles = ok("getByPage", await fetchCall(inbox.getByPage({ pageNo: 1, limit: 10 })));

  // "six" and "seven" are still unseen: a page of one marks only the newest.
  out.markPageSeen = ok(
    "markAllAsSeen 1",
    await fetchCall(inbox.markAllAsSeen({ page: 1, limit: 1 })),
  );
  out.afterPageSeen = ok("getByPage", await fetchCall(inbox.getByPage({ pageNo: 1, limit: 10 })));
  out.markAllAsSeen = ok(
    "markAllAsSeen",
    await fetchCall(inbox.markAllAsSeen({ page: 1, limit: 15 })),
  );
  out.afterSeen = ok("getByPage", await fetchCall(inbox.getByPage({ pageNo: 1, limit: 10 })));
  out.markAllAsRead = ok("markAllAsRead", await fetchCall(inbox.markAllAsRead()));
  out.afterRead = ok("getByPage", await fetchCall(inbox.getByPage({ pageNo: 1, limit: 10 })));

  out.categories = ok("getCategories", await fetchCall(prefs.getCategories()));
  out.supportedChannels = await prefs.getSupportedChannels();
  out.preferencesBefore = ok("getPreferences", await fetchCall(prefs.getPreferences()));
  const categoryId = Number(env("HERALD_CATEGORY_ID"));
  out.setPreferences = ok(
    "setPreferences",
    await fetchCall(
      prefs.setPreferences([
        {
          categoryId,
          channels: [
            { channel: "email", enabled: false },
            { channel: "inApp", enabled: true },
          ],
        },
      ]),
    ),
  );
  out.preferencesAfter = ok("getPreferences", await fetchCall(prefs.getPreferences()));
  out.setProfileAttributes = await prefs.setProfileAttributes({
    firstName: "Carol",
    plan: "pro",
  });
  expect("setProfileAttributes", out.setProfileAttributes === true);

  out.removeAll = ok("removeAll", await fetchCall(inbox.removeAll()));
  out.afterRemoveAll = ok("getByPage", await fetchCall(inbox.getByPage({ pageNo: 1, limit: 10 })));
  return out;
});
