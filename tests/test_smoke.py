import httpx

from tests.factories import Creds, send_body


async def test_send_then_list(client: httpx.AsyncClient, creds: Creds) -> None:
    sent = await client.post("/v3/notifications", json=send_body("alice"), headers=creds.backend())
    assert sent.status_code == 202, sent.text
    page = await client.get("/v3/notifications", headers=creds.user("alice"))
    assert page.status_code == 200
    body = page.json()
    assert body["unreadCount"] == 1
    assert [n["title"] for n in body["data"]] == ["Hello"]


async def test_rolled_back_between_tests(client: httpx.AsyncClient, creds: Creds) -> None:
    page = await client.get("/v3/notifications", headers=creds.user("alice"))
    assert page.json()["pagination"]["totalCount"] == 0
