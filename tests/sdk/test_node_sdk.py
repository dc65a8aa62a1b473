"""The official backend SDK @engagespot/node 1.7.0, unchanged, against a live Herald."""

import base64
import json
import re
from typing import Any

import httpx
import pytest

from tests.factories import Creds
from tests.sdk import node
from tests.sdk.node import Js

pytestmark = [pytest.mark.node, pytest.mark.live]

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="session")
def js() -> Js:
    return node.prepare()


def states(page: dict[str, Any]) -> list[tuple[str, str, bool, bool]]:
    """(title, state, seen?, clicked?) per item, in the order listed."""
    return [(n["title"], n["state"], bool(n["seenAt"]), bool(n["clickedAt"])) for n in page["data"]]


def counts(page: dict[str, Any]) -> tuple[int, int]:
    return page["unreadCount"], page["pagination"]["totalCount"]


def test_backend_flow(js: Js, live_server: str, live_app: Creds) -> None:
    other = node.new_app(live_server)
    out = js.run(
        "node_flow",
        node.config(
            live_server,
            live_app,
            HERALD_USER_ID="alice",
            HERALD_INLINE_USER_ID="ina",
            HERALD_OTHER_API_KEY=other.api_key,
            HERALD_OTHER_API_SECRET=other.api_secret,
        ),
    )
    assert out["failures"] == []

    # createOrUpdateUser resolves to the body: PUT /users/{id} merges the flat profile.
    assert out["upsert"]["identifier"] == "alice"
    assert out["upsert"]["profile"] == {"email": "alice@example.com", "plan": "pro"}
    assert out["upsertAgain"]["profile"] == {"email": "alice@example.com", "plan": "team"}
    assert ISO.match(out["upsertAgain"]["updatedAt"])

    # createCategory posts to the /v3/notifications/categories alias.
    category = out["createCategory"]
    assert category["status"] == 200
    assert {k: category["data"][k] for k in ("name", "identifier", "hideInInApp")} == {
        "name": "Billing",
        "identifier": "billing",
        "hideInInApp": False,
    }
    assert isinstance(category["data"]["id"], int)

    for send in ("sendCategorised", "sendPlain", "sendLegacyCategory"):
        assert list(out[send]) == ["requestId"], out[send]
        assert REQUEST_ID.match(out[send]["requestId"])

    # inAppInbox.fetch(user): key + secret with ?userIdentifier, newest first, 20 a page.
    inbox = out["inbox"]
    assert counts(inbox) == (3, 3)
    assert inbox["pagination"]["pageNo"] == 1
    assert inbox["pagination"]["limit"] == 20
    assert states(inbox) == [
        ("Weekly digest", "unread", False, False),
        ("Welcome aboard", "unread", False, False),
        ("Invoice ready", "unread", False, False),
    ]
    invoice = inbox["data"][2]
    assert invoice == {
        "id": int(out["ids"]["invoice"]),
        "title": "Invoice ready",
        "message": "Your invoice #42 is ready",
        "icon": "https://example.com/icon.png",
        "url": "https://example.com/invoices/42",
        "data": {"invoice": 42},
        "category": {"id": str(category["data"]["id"]), "identifier": "billing", "name": "Billing"},
        "blocks": [],
        "createdAt": invoice["createdAt"],
        "seenAt": None,
        "clickedAt": None,
        "state": "unread",
    }
    assert ISO.match(invoice["createdAt"])
    assert inbox["data"][1]["category"] is None
    # A top-level (legacy) category that does not exist yet is created on the fly.
    assert inbox["data"][0]["category"]["identifier"] == "digest"
    assert [n["title"] for n in out["pageTwo"]["data"]] == ["Invoice ready"]
    assert out["pageTwo"]["pagination"]["totalPages"] == 2

    # The inline recipient object created the user and delivered to them.
    assert states(out["inlineInbox"]) == [("Invoice ready", "unread", False, False)]

    # Another app's key + secret do not reach this app's notification ids.
    for step in ("strangerRead", "strangerDelete"):
        assert out[step]["status"] == 404, out[step]
        assert out[step]["data"]["status"] == "error"

    # PATCH /click {read: true} with key + secret and no user: Herald finds the id in the app.
    read = out["read"]
    assert read["status"] == 200
    assert read["data"]["id"] == invoice["id"]
    assert read["data"]["state"] == "clicked"
    assert read["data"]["seenAt"] == read["data"]["clickedAt"]
    assert ISO.match(read["data"]["clickedAt"])
    assert counts(out["afterRead"]) == (2, 3)
    assert states(out["afterRead"])[2] == ("Invoice ready", "clicked", True, True)

    # DELETE /views then DELETE /reads undo it, one timestamp each.
    assert out["unseen"]["status"] == 200
    assert (out["unseen"]["data"]["seenAt"], out["unseen"]["data"]["clickedAt"]) == (
        None,
        read["data"]["clickedAt"],
    )
    assert out["unread"]["status"] == 200
    assert out["unread"]["data"]["clickedAt"] is None
    assert out["unread"]["data"]["state"] == "unread"
    assert counts(out["afterUndo"]) == (3, 3)

    assert out["deleted"]["status"] == 200
    assert out["deleted"]["data"]["message"] == "Notification deleted successfully"
    assert out["deletedAgain"]["status"] == 404
    assert [n["title"] for n in out["afterDelete"]["data"]] == ["Weekly digest", "Invoice ready"]
    assert counts(out["afterDelete"]) == (2, 2)

    # deleteCategory uses the alias too; the notification stays, uncategorised.
    assert out["deleteCategory"]["status"] == 200
    assert out["deleteCategoryAgain"]["status"] == 404
    after = out["afterCategoryDelete"]["data"]
    assert [n["title"] for n in after] == ["Weekly digest", "Invoice ready"]
    assert after[0]["category"]["identifier"] == "digest"
    assert after[1]["category"] is None

    # users.delete requests /v3/users<identifier> (no slash): that is no route, so the SDK
    # call fails and the user stays. Recorded, not endorsed.
    assert out["deleteUser"]["status"] == 404
    assert out["deleteUser"]["data"]["message"] == "Route not found"
    still = httpx.get(f"{live_server}/v3/users/ina", headers=live_app.backend())
    assert still.status_code == 200
    assert still.json()["profile"] == {"email": "ina@example.com", "firstName": "Ina"}

    # Cross-check what the SDK saw against the user's own view of the inbox.
    mine = httpx.get(f"{live_server}/v3/notifications", headers=live_app.user("alice")).json()
    assert mine["data"] == out["afterCategoryDelete"]["data"]


def claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def part(segment: str) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=="))
        return decoded

    header, payload, _ = token.split(".")
    return part(header), part(payload)


def test_user_tokens_open_only_their_inbox_in_secure_mode(
    js: Js, live_server: str, live_app: Creds
) -> None:
    private_key = node.signing_key(live_server, live_app)
    for user, title in (("alice", "For Alice"), ("bob", "For Bob")):
        sent = httpx.post(
            f"{live_server}/v3/notifications",
            json={"notification": {"title": title}, "sendTo": {"recipients": [user]}},
            headers=live_app.backend(),
        )
        assert sent.status_code == 202, sent.text

    out = js.run(
        "node_tokens",
        node.config(
            live_server, live_app, HERALD_SIGNING_KEY=private_key, HERALD_TOKEN_USERS="alice,bob"
        ),
    )
    tokens: dict[str, str] = out["tokens"]
    header, payload = claims(tokens["alice"])
    assert header == {"alg": "RS256", "typ": "JWT"}
    assert payload == {"sub": "user:alice", "apiKey": live_app.api_key, "iat": payload["iat"]}

    node.secure_mode(live_server, live_app)

    def inbox(headers: dict[str, str]) -> httpx.Response:
        return httpx.get(f"{live_server}/v3/notifications", headers=headers)

    def bearer(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[user]}"}

    alice = inbox(bearer("alice"))
    assert alice.status_code == 200, alice.text
    assert [n["title"] for n in alice.json()["data"]] == ["For Alice"]

    refused = inbox(live_app.user("alice"))
    assert refused.status_code == 401
    assert refused.json()["status"] == "error"

    # Bob's token opens Bob's inbox, never Alice's: not the list, not her item by id.
    bob = inbox(bearer("bob"))
    assert [n["title"] for n in bob.json()["data"]] == ["For Bob"]
    alice_id = alice.json()["data"][0]["id"]
    poke = httpx.get(f"{live_server}/v3/notifications/{alice_id}", headers=bearer("bob"))
    assert poke.status_code == 404
    # Asking for Alice by name with Bob's token changes nothing: the token decides.
    sneaky = httpx.get(
        f"{live_server}/v3/notifications",
        params={"userIdentifier": "alice"},
        headers={**bearer("bob"), "X-ENGAGESPOT-USER-ID": "alice"},
    )
    assert [n["title"] for n in sneaky.json()["data"]] == ["For Bob"]

    # A token signed by some other key is refused, even with the right claims.
    forged = tokens["alice"].rsplit(".", 1)[0] + "." + tokens["bob"].rsplit(".", 1)[1]
    assert inbox({"Authorization": f"Bearer {forged}"}).status_code == 401

    # The backend (key + secret) is not affected by secure mode.
    backend = httpx.get(
        f"{live_server}/v3/notifications",
        params={"userIdentifier": "alice"},
        headers=live_app.backend(),
    )
    assert [n["title"] for n in backend.json()["data"]] == ["For Alice"]
