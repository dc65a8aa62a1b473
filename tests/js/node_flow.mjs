// Drive Herald with @engagespot/node, unchanged: the backend side of the inbox.
//
// env: HERALD_URL (root, no /v3), HERALD_API_KEY, HERALD_API_SECRET, HERALD_USER_ID,
//      HERALD_INLINE_USER_ID, HERALD_OTHER_API_KEY, HERALD_OTHER_API_SECRET (another app)
import { axiosCall, env, run } from "./lib.mjs";
import { nodeClients } from "./node_clients.mjs";

run(async (expect) => {
  const { client, stranger } = nodeClients();
  const user = env("HERALD_USER_ID");
  const inline = env("HERALD_INLINE_USER_ID");
  const out = {};

  out.upsert = await client.createOrUpdateUser(user, { email: `${user}@example.com`, plan: "pro" });
  out.upsertAgain = await client.users.createOrUpdateUser(user, { plan: "team" });

  const created = await axiosCall(client.createCategory("billing", "Billing"));
  expect("createCategory", created.ok);
  out.createCategory = created;

  out.sendCategorised = await client.send({
    notification: {
      title: "Invoice ready",
      message: "Your invoice #42 is ready",
      url: "https://example.com/invoices/42",
      icon: "https://example.com/icon.png",
      category: "billing",
      data: { invoice: 42 },
    },
    sendTo: {
      recipients: [user, { identifier: inline, email: `${inline}@example.com`, firstName: "Ina" }],
    },
  });
  out.sendPlain = await client.send({
    notification: { title: "Welcome aboard" },
    sendTo: { recipients: [user] },
  });
  out.sendLegacyCategory = await client.send({
    notification: { title: "Weekly digest" },
    category: "digest",
    sendTo: { recipients: [user] },
  });

  out.inbox = await client.inAppInbox.fetch(user);
  out.inlineInbox = await client.inAppInbox.fetch(inline);
  out.pageTwo = await client.inAppInbox.fetch(user, 2, 2);

  const byTitle = Object.fromEntries(out.inbox.data.map((n) => [n.title, n.id]));
  const invoice = String(byTitle["Invoice ready"]);
  const welcome = String(byTitle["Welcome aboard"]);
  const digest = String(byTitle["Weekly digest"]);
  out.ids = { invoice, welcome, digest };

  // Another app's credentials must not reach this app's notification ids.
  out.strangerRead = await axiosCall(stranger.inAppInbox.markNotificationAsRead(invoice));
  out.strangerDelete = await axiosCall(stranger.inAppInbox.deleteNotification(invoice));

  out.read = await axiosCall(client.inAppInbox.markNotificationAsRead(invoice));
  expect("markNotificationAsRead", out.read.ok);
  out.afterRead = await client.inAppInbox.fetch(user);

  out.unseen = await axiosCall(client.inAppInbox.markNotificationAsUnseen(invoice));
  expect("markNotificationAsUnseen", out.unseen.ok);
  out.unread = await axiosCall(client.inAppInbox.markNotificationAsUnRead(invoice));
  expect("markNotificationAsUnRead", out.unread.ok);
  out.afterUndo = await client.inAppInbox.fetch(user);

  out.deleted = await axiosCall(client.inAppInbox.deleteNotification(welcome));
  expect("deleteNotification", out.deleted.ok);
  out.deletedAgain = await axiosCall(client.inAppInbox.deleteNotification(welcome));
  out.afterDelete = await client.inAppInbox.fetch(user);

  out.deleteCategory = await axiosCall(client.deleteCategory(created.data.id));
  expect("deleteCategory", out.deleteCategory.ok);
  out.deleteCategoryAgain = await axiosCall(client.deleteCategory(created.data.id));
  out.afterCategoryDelete = await client.inAppInbox.fetch(user);

  // users.delete requests `/v3/users<identifier>` (no slash): record what that gets.
  out.deleteUser = await axiosCall(client.users.delete(inline));
  return out;
});
