// Drive Herald's topics and workflow cancellation with @engagespot/node, unchanged.
//
// env: HERALD_URL (root, no /v3), HERALD_API_KEY, HERALD_API_SECRET,
//      HERALD_OTHER_API_KEY, HERALD_OTHER_API_SECRET (another app), HERALD_SEND_AT (ISO time)
import { axiosCall, env, run } from "./lib.mjs";
import { nodeClients } from "./node_clients.mjs";

run(async (expect) => {
  const { client, stranger } = nodeClients();
  const out = {};

  // create(name) derives the identifier itself: lower case, whitespace runs to "-".
  out.created = await client.topics.create("Product Updates");
  out.createdDigest = await client.topics.create("Weekly digest", "digest");
  out.duplicate = await axiosCall(client.topics.create("product   updates"));
  const news = out.created.id;
  const digest = out.createdDigest.id;

  out.renamed = await client.topics.update(news, "Product news");
  out.strangerRename = await axiosCall(stranger.topics.update(news, "Hijacked"));

  out.subscribed = await client.topics.subscribeUser(news, [
    { identifier: "alice", channels: ["inApp", "email"] },
    { identifier: "bob", channels: ["push"] },
    { identifier: "carol", channels: [] },
  ]);
  out.subscribedDigest = await client.topics.subscribeUser(digest, [
    { identifier: "alice", channels: [] },
  ]);
  out.aliceSubscriptions = await client.topics.listSubscriptionsOfUser("alice");

  out.channelUpdated = await client.topics.updateChannel("bob", news, ["email"]);
  out.bobSubscriptions = await client.topics.listSubscriptionsOfUser("bob");

  out.unsubscribed = await client.topics.unsubscribeUser(news, ["carol", "nobody"]);
  out.carolSubscriptions = await client.topics.listSubscriptionsOfUser("carol");
  out.strangerSubscriptions = await stranger.topics.listSubscriptionsOfUser("alice");

  out.topicSend = await client.send({
    notification: { title: "Topic news" },
    sendTo: { topics: ["product-updates"] },
  });

  // A scheduled run, cancelled for one recipient, then for everyone.
  out.scheduled = await client.send({
    notification: {
      title: "Finish your profile",
      workflow: { identifier: "onboarding", cancellationKey: "profile-alice-bob" },
    },
    sendTo: { recipients: ["alice", "bob", "dave"] },
    sendAt: env("HERALD_SEND_AT"),
  });
  out.cancelForBob = await client.workflows.cancelRun("onboarding", {
    cancellationKey: "profile-alice-bob",
    cancelFor: { recipients: ["bob"] },
  });
  out.strangerCancel = await stranger.workflows.cancelRun("onboarding", {
    cancellationKey: "profile-alice-bob",
  });
  out.cancelAll = await client.workflows.cancelRun("onboarding", {
    cancellationKey: "profile-alice-bob",
  });
  out.cancelAgain = await client.workflows.cancelRun("onboarding", {
    cancellationKey: "profile-alice-bob",
  });
  out.cancelInvalid = await axiosCall(client.workflows.cancelRun("onboarding", {}));

  out.strangerDelete = await axiosCall(stranger.topics.delete(digest));
  out.deleted = await client.topics.delete(digest);
  out.deletedAgain = await axiosCall(client.topics.delete(digest));
  out.aliceAfterDelete = await client.topics.listSubscriptionsOfUser("alice");

  expect("created", Number.isInteger(news) && Number.isInteger(digest));
  return out;
});
