"""The official Python SDK (engagespot==1.1.0), unchanged, against a live Herald."""

import httpx
from engagespot import Engagespot

from tests.factories import Creds


def client_for(base: str, creds: Creds) -> Engagespot:
    # data_region=None, or the SDK replaces base_url with the cloud's.
    return Engagespot(
        base_url=f"{base}/v3", api_key=creds.api_key, api_secret=creds.api_secret, data_region=None
    )


def test_send_and_upsert_user(live_server: str, live_app: Creds) -> None:
    sdk = client_for(live_server, live_app)
    upserted = sdk.create_or_update_user("py-user", {"email": "py@example.com", "plan": "pro"})
    assert upserted["success"] is True, upserted
    assert upserted["message"]["profile"] == {"email": "py@example.com", "plan": "pro"}

    sent = sdk.send(
        {
            "notification": {"title": "From Python", "message": "hi", "category": "py"},
            "sendTo": {"recipients": ["py-user"]},
        }
    )
    assert sent["success"] is True, sent
    assert len(sent["message"]["requestId"]) == 36

    inbox = httpx.get(f"{live_server}/v3/notifications", headers=live_app.user("py-user")).json()
    assert [n["title"] for n in inbox["data"]] == ["From Python"]
    assert inbox["data"][0]["category"]["identifier"] == "py"


def test_errors_reach_the_sdk_as_json(live_server: str, live_app: Creds) -> None:
    wrong = Creds(live_app.id, live_app.api_key, "not-the-secret")
    sent = client_for(live_server, wrong).send(
        {"notification": {"title": "x"}, "sendTo": {"recipients": ["a"]}}
    )
    assert sent["success"] is False
    assert sent["message"]["status"] == "error"

    invalid = client_for(live_server, live_app).send({"sendTo": {"recipients": ["a"]}})
    assert invalid["success"] is False
    assert invalid["message"]["message"] == ["notification is required"]
