// @engagespot/core 1.3.8 or 1.4.2, unchanged, against Herald: the whole REST flow with the
// socket on, checking the live event each call announces. The bundler maps "legacy-core" to
// the version under test (esbuild --alias:legacy-core=engagespot-core-1.4.2), as react-hooks
// 1.x and react-component 1.x/2.x use it: `new Engagespot(apiKey, {userId, baseURL})`.
//
// env: HERALD_URL (root: core appends /v3, and its socket connects there), HERALD_API_KEY,
//      HERALD_API_SECRET (to send as a backend), HERALD_USER_ID, HERALD_CATEGORY_ID,
//      HERALD_USER_SIGNATURE or HERALD_USER_TOKEN (optional: secure mode),
//      HERALD_OVERRIDE=1 (optional: point core with endPointOverride + rtmServer, not baseURL)
import { env, optionalEnv, run } from "./lib.mjs";
import Engagespot from "legacy-core";

const WAIT_MS = 10000;

// Every listener core 1.x offers, recorded with what it was called with.
const LISTENERS = {
  receive: "onNotificationReceive",
  click: "onNotificationClick",
  see: "onNotificationSee",
  remove: "onNotificationDelete",
  removeAll: "onAllNotificationsDelete",
  allSeen: "onMarkAllNotificationsAsSeen",
  allRead: "onMarkAllNotificationsAsRead",
  stateChange: "onNotificationStateChange",
};

// Core's items hold the client (and so the socket): keep only what a UI reads.
const plain = (n) => ({
  id: n.id,
  title: n.title,
  message: n.message,
  icon: n.icon,
  url: n.url,
  data: n.data,
  blocks: n.blocks,
  createdAt: n.createdAt,
  seenAt: n.seenAt ?? null,
  clickedAt: n.clickedAt ?? null,
});

function listen(engagespot) {
  const heard = [];
  const waiters = [];
  for (const [name, method] of Object.entries(LISTENERS)) {
    engagespot[method]((...args) => {
      const params = name === "receive" ? [plain(args[0])] : args;
      heard.push({ name, params: JSON.parse(JSON.stringify(params)) });
      for (const w of waiters.splice(0)) w();
    });
  }
  // The first `name` event heard (and not yet taken), within `ms`.
  const next = (name, ms = WAIT_MS) =>
    new Promise((resolve, reject) => {
      let done = false;
      const check = () => {
        if (done) return;
        const i = heard.findIndex((e) => e.name === name);
        if (i >= 0) {
          done = true;
          clearTimeout(deadline);
          resolve(heard.splice(i, 1)[0].params);
        } else {
          waiters.push(check);
        }
      };
      const deadline = setTimeout(() => {
        done = true;
        reject(new Error(`no ${name} event within ${ms} ms; heard ${JSON.stringify(heard)}`));
      }, ms);
      check();
    });
  return { heard, next };
}

run(async (expect) => {
  const base = env("HERALD_URL");
  const apiKey = env("HERALD_API_KEY");
  const userId = env("HERALD_USER_ID");
  const userSignature = optionalEnv("HERALD_USER_SIGNATURE");
  const userToken = optionalEnv("HERALD_USER_TOKEN");
  const backend = {
    "content-type": "application/json",
    "X-ENGAGESPOT-API-KEY": apiKey,
    "X-ENGAGESPOT-API-SECRET": env("HERALD_API_SECRET"),
  };
  const send = async (notification) => {
    const response = await fetch(`${base}/v3/notifications`, {
      method: "POST",
      headers: backend,
      body: JSON.stringify({ notification, sendTo: { recipients: [userId] } }),
    });
    expect(`send ${notification.title}`, response.status === 202);
  };

  // baseURL sets both the REST endpoint (+ "/v3") and the socket server; endPointOverride sets
  // only the first (the socket would go to the cloud), so it needs rtmServer beside it.
  const where = optionalEnv("HERALD_OVERRIDE")
    ? { endPointOverride: `${base}/v3`, rtmServer: base }
    : { baseURL: base };
  const engagespot = new Engagespot(apiKey, {
    userId,
    ...where,
    ...(userSignature ? { userSignature } : {}),
    ...(userToken ? { userToken } : {}),
  });
  const events = listen(engagespot);
  const out = {};
  const started = Date.now();
  out.ready = await engagespot.isReady();
  expect("isReady", out.ready === true);
  out.connect = {
    unreadCount: engagespot.unreadCount,
    enabledChannels: engagespot.enabledChannels,
    enableWebPush: engagespot.enableWebPush,
    publicKeyLength: engagespot.publicKey?.length ?? 0,
  };
  // connect() opened the socket; the server joins it to the user's room before accepting it.
  const socket = engagespot.rtmClient;
  if (!socket.connected) {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("socket not connected")), WAIT_MS);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("connect_error", (error) => {
        clearTimeout(timer);
        reject(new Error(`socket refused: ${error.message}`));
      });
    });
  }
  out.socketMs = Date.now() - started;

  // Live: each send arrives as a built item, message and time included.
  const titles = ["one", "two", "three", "four", "five"];
  out.received = [];
  for (const title of titles) {
    await send({
      title,
      message: `${title} message`,
      icon: "https://example.com/icon.png",
      url: `https://example.com/${title}`,
      data: { orderId: title.length },
    });
    out.received.push((await events.next("receive"))[0]);
  }
  const ids = Object.fromEntries(out.received.map((n) => [n.title, n.id]));
  out.ids = ids;

  const list = async (page, limit) => {
    const fetched = await engagespot.getNotificationList().fetch(page, limit);
    return {
      unreadCount: fetched.unreadCount,
      totalCount: fetched.totalCount,
      totalPages: fetched.totalPages,
      items: fetched.data.map(plain),
      objects: fetched.data,
    };
  };
  const listed = async (page = 1, limit = 10) => {
    const { objects, ...rest } = await list(page, limit);
    return rest;
  };
  const first = await list(1, 10);
  out.first = { ...first, objects: undefined };
  out.pageTwo = await listed(2, 2);
  out.unreadAfterList = engagespot.unreadCount;
  const item = (title) => first.objects.find((n) => n.title === title);

  // Notification.fetch(): GET by id, which also marks it seen.
  out.fetched = plain(await item("one").fetch());
  out.fetchSeen = await events.next("see");

  out.markAsRead = plain(await engagespot.markAsRead(ids.two));
  out.click = await events.next("click");
  await item("two").markAsUnRead();
  out.unreadSee = await events.next("see");
  await item("one").markAsUnSeen();
  out.unseenSee = await events.next("see");

  out.changeState = await engagespot.changeNotificationState(ids.three, { state: "accepted" });
  out.stateChange = await events.next("stateChange");
  await engagespot.deleteNotification(ids.four);
  out.remove = await events.next("remove");
  out.afterSingles = await listed();

  // Page 2 of 2 is ["two" (seen), "one" (unseen)]: only "one" changes, "five" stays unseen.
  await engagespot.markAllAsSeen(2, 2);
  out.pageSeen = await events.next("see");
  out.pageAllSeen = await events.next("allSeen");
  out.afterPageSeen = await listed();

  await engagespot.markAllAsRead();
  out.allRead = await events.next("allRead");
  out.allReadCount = await events.next("allSeen");
  out.afterRead = await listed();

  out.categories = await engagespot.getCategories();
  out.preferencesBefore = await engagespot.getPreferences();
  const categoryId = Number(env("HERALD_CATEGORY_ID"));
  await engagespot.setPreferences([
    { categoryId, channels: [{ channel: "email", enabled: false }] },
  ]);
  out.preferencesAfter = await engagespot.getPreferences();
  await engagespot.setProfileAttributes({ firstName: "Legacy", plan: "pro" });
  out.webPush = await engagespot.attachPushSubscription({
    endpoint: "https://fcm.googleapis.com/fcm/send/legacy-core",
    expirationTime: null,
    keys: {
      p256dh: "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
      auth: "tBHItJI5svbpez7KI4CCXg",
    },
  });

  await engagespot.deleteAllNotifications();
  out.removeAllEvent = await events.next("removeAll");
  out.removeAllCount = await events.next("allSeen");
  out.afterRemoveAll = await listed();

  // Let anything still in flight arrive before listing what was never taken.
  await send({ title: "sentinel" });
  out.sentinel = (await events.next("receive"))[0].title;
  out.leftover = events.heard.map((e) => e.name);
  out.deviceId = engagespot.deviceId;
  socket.disconnect();
  return out;
});
