// @engagespot/core's realtime channel against Herald: two users connected at once; one gets
// its events, the other none. Bundled like core_flow.mjs (it is built for bundlers).
//
// env: HERALD_URL (root), HERALD_API_KEY, HERALD_API_SECRET (to send as a backend),
//      HERALD_USER_ID, HERALD_OTHER_USER_ID
import { env, fetchCall, run } from "./lib.mjs";
import { createInstance } from "@engagespot/core";

const EVENTS = [
  "notificationReceive",
  "notificationDelete",
  "notificationRead",
  "notificationSeen",
  "notificationReadAll",
  "notificationDeleteAll",
  "notificationStateChange",
];

function listen(instance) {
  const seen = [];
  const waiters = [];
  for (const name of EVENTS) {
    instance.events[name].subscribe((params) => {
      seen.push({ name, params: params ?? null });
      for (const w of waiters.splice(0)) w();
    });
  }
  const next = (name, ms) =>
    new Promise((resolve, reject) => {
      let done = false;
      const check = () => {
        if (done) return; // timed out: must not take an event meant for a later wait
        const i = seen.findIndex((e) => e.name === name);
        if (i >= 0) {
          done = true;
          clearTimeout(deadline);
          resolve(seen.splice(i, 1)[0].params);
        } else {
          waiters.push(check);
        }
      };
      const deadline = setTimeout(() => {
        done = true;
        reject(new Error(`no ${name} within ${ms} ms`));
      }, ms);
      check();
    });
  return { seen, next };
}

run(async (expect) => {
  const base = env("HERALD_URL");
  const apiKey = env("HERALD_API_KEY");
  const backend = {
    "content-type": "application/json",
    "X-ENGAGESPOT-API-KEY": apiKey,
    "X-ENGAGESPOT-API-SECRET": env("HERALD_API_SECRET"),
  };
  const send = async (user, title) => {
    const response = await fetch(`${base}/v3/notifications`, {
      method: "POST",
      headers: backend,
      body: JSON.stringify({ notification: { title }, sendTo: { recipients: [user] } }),
    });
    expect(`send ${title}`, response.status === 202);
  };
  const open = (userId) =>
    createInstance({ apiKey, userId, baseUrl: base, disableWebPush: true });

  const userId = env("HERALD_USER_ID");
  const otherId = env("HERALD_OTHER_USER_ID");
  const me = open(userId);
  const other = open(otherId);
  const mine = listen(me);
  const theirs = listen(other);

  // The socket connects in the background; probe until each user hears a send.
  const ready = async (user, events) => {
    const started = Date.now();
    for (let attempt = 0; Date.now() - started < 40000; attempt++) {
      await send(user, `probe ${attempt}`);
      try {
        await events.next("notificationReceive", 500);
        await new Promise((r) => setTimeout(r, 300));
        events.seen.splice(0); // late probes
        return Date.now() - started;
      } catch {
        // not connected yet
      }
    }
    throw new Error(`${user}'s socket heard nothing within 40 s`);
  };
  const out = {};
  out.readyMs = [await ready(userId, mine), await ready(otherId, theirs)];
  await send(userId, "realtime hello");
  out.received = (await mine.next("notificationReceive", 10000)).notification;
  const id = String(out.received.id);

  out.read = await (async () => {
    expect("markAsRead", (await fetchCall(me.notification.markAsRead(id))).ok);
    return mine.next("notificationRead", 10000);
  })();
  out.deleted = await (async () => {
    expect("remove", (await fetchCall(me.notification.remove(id))).ok);
    return mine.next("notificationDelete", 10000);
  })();
  await send(userId, "second");
  await mine.next("notificationReceive", 10000);
  expect("markAllAsRead", (await fetchCall(me.notification.markAllAsRead())).ok);
  out.readAll = await mine.next("notificationReadAll", 10000);
  expect("removeAll", (await fetchCall(me.notification.removeAll())).ok);
  out.deleteAll = await mine.next("notificationDeleteAll", 10000);

  await new Promise((r) => setTimeout(r, 500));
  out.otherHeard = theirs.seen.map((e) => e.name);
  out.leftover = mine.seen.map((e) => e.name);
  me.realTime?.disconnect?.();
  other.realTime?.disconnect?.();
  return out;
});
