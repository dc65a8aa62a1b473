"""The rules under SMS and WhatsApp: Twilio's signature (checked against the `twilio`
package's RequestValidator), opt-outs as targets, settings, the callback URL."""

import uuid
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from twilio.request_validator import RequestValidator

from app.config import Settings
from app.delivery import addresses, callbacks, catalogue, opt_outs, targets
from app.delivery.channels import twilio
from app.delivery.models import Delivery
from app.errors import BadRequest
from app.users import repository as users_repository
from tests.delivery.conftest import ADMIN, add_provider, new_app
from tests.delivery.sms_peer import FROM, SID, TOKEN
from tests.factories import Creds, make_app

PARAMS = [
    ("MessageSid", "SM0123"),
    ("MessageStatus", "delivered"),
    ("Body", "café ☕ & 1+1=2"),
    ("To", "+14155550100"),
    ("MediaUrl", "b"),
    ("MediaUrl", "a"),
    ("Empty", ""),
]


@pytest.mark.parametrize(
    "url",
    [
        "https://herald.example/v3/providers/7/callback",
        "https://herald.example:8443/v3/providers/7/callback?x=1&y=2",
        "http://127.0.0.1:8000/v3/providers/7/callback",
    ],
)
def test_herald_signs_as_twilio_does(url: str) -> None:
    validator = RequestValidator(TOKEN)
    multi = MultiDict(PARAMS)
    assert twilio.signature(TOKEN, url, PARAMS) == validator.compute_signature(url, multi)
    signed = validator.compute_signature(url, multi)
    assert twilio.verified(TOKEN, url, PARAMS, signed)
    assert not twilio.verified("another-token", url, PARAMS, signed)
    assert not twilio.verified(TOKEN, url, [*PARAMS, ("x", "")], signed)
    assert not twilio.verified(TOKEN, url + "/", PARAMS, signed)


def test_an_https_url_verifies_with_or_without_its_default_port() -> None:
    bare, ported = "https://herald.example/cb", "https://herald.example:443/cb"
    for signed_as, checked in ((bare, ported), (ported, bare)):
        signature = RequestValidator(TOKEN).compute_signature(signed_as, dict(PARAMS[:2]))
        assert twilio.verified(TOKEN, checked, PARAMS[:2], signature)
        assert RequestValidator(TOKEN).validate(checked, dict(PARAMS[:2]), signature)


class MultiDict(dict[str, str]):
    """What Flask hands RequestValidator: a repeated field keeps every value."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs

    def getall(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]


def test_the_checked_url_is_the_public_one_when_set() -> None:
    settings = Settings(public_url="https://herald.example/base/")
    assert settings.public_url == "https://herald.example/base"
    assert (
        callbacks.checked_url(
            settings, path="/v3/providers/7/callback", query="", received="http://10.0.0.5/x"
        )
        == "https://herald.example/base/v3/providers/7/callback"
    )
    assert twilio.callback_url(settings, 7) == "https://herald.example/base/v3/providers/7/callback"
    assert twilio.callback_url(Settings(), 7) is None
    assert callbacks.checked_url(Settings(), path="/p", query="", received="http://h/p") == (
        "http://h/p"
    )


@pytest.mark.parametrize("bad", ["herald.example", "ftp://herald.example", "https://h/?q=1"])
def test_a_public_url_must_be_an_http_url(bad: str) -> None:
    with pytest.raises(ValidationError, match="http"):
        Settings(public_url=bad)
    with pytest.raises(ValidationError, match="http"):
        Settings(twilio_base_url=bad)


def test_an_opted_out_number_is_skipped_with_the_reason() -> None:
    profile = {"phoneNumber": "+14155550100"}
    [found] = addresses.addresses(
        catalogue.SMS, profile, provider_has_url=False, opted_out={"+14155550100"}
    )
    assert found.target is None
    assert found.reason is not None
    assert "opted out of sms" in found.reason
    [other] = addresses.addresses(
        catalogue.WHATSAPP, profile, provider_has_url=False, opted_out={"+14155550199"}
    )
    assert other.target == "+14155550100"


async def test_forgetting_a_phone_marks_it_opted_out_of_that_channel_only(
    session: AsyncSession,
) -> None:
    app, _ = await make_app(session)
    ids = await users_repository.ensure(session, app.id, ["ann"])
    delivery = Delivery(
        id=1,
        app_id=app.id,
        user_id=ids["ann"],
        channel=catalogue.SMS,
        target="+14155550100",
        provider="twilio_sms",
        request_id=uuid.uuid4(),
    )
    assert await targets.forget(session, delivery) == "number marked opted out of sms"
    assert await targets.forget(session, delivery) == "number already opted out of sms"
    phones = {"+14155550100", "+14155550101"}
    found = await opt_outs.opted_out(session, app_id=app.id, channel=catalogue.SMS, phones=phones)
    assert found == {"+14155550100"}
    whatsapp = await opt_outs.opted_out(
        session, app_id=app.id, channel=catalogue.WHATSAPP, phones=phones
    )
    assert whatsapp == set()
    assert await opt_outs.remove(
        session, app_id=app.id, channel=catalogue.SMS, phone="+14155550100"
    )
    assert not await opt_outs.opted_out(
        session, app_id=app.id, channel=catalogue.SMS, phones=phones
    )


async def twilio_app(api: httpx.AsyncClient) -> tuple[Creds, dict[str, Any]]:
    """An app with in-app and SMS, and its one SMS provider: Twilio, with the peer's account."""
    creds = await new_app(api, ["inApp", "sms"])
    config = {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM_NUMBER": FROM}
    return creds, await add_provider(
        api, creds, "sms", {"provider": "twilio_sms", "config": config}
    )


async def test_without_a_public_url_the_request_url_is_checked(api: httpx.AsyncClient) -> None:
    """No HERALD_PUBLIC_URL: the signature is checked against the URL the request came to;
    a verified callback naming no delivery of the provider is a 404 and changes nothing."""
    creds, provider = await twilio_app(api)
    url = f"http://herald.test/v3/providers/{provider['id']}/callback"
    params = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    answer = await api.post(url, data=params, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 404, answer.text
    assert answer.json()["message"] == "No delivery of this provider has this MessageSid"
    forged = await api.post(url, data=params, headers={"X-Twilio-Signature": "x" + signature})
    assert forged.status_code == 403
    listed = await api.get(f"/admin/apps/{creds.id}/deliveries", headers=ADMIN)
    assert listed.json()["data"] == []


async def test_malformed_callbacks_are_4xx_and_change_nothing(api: httpx.AsyncClient) -> None:
    """The sweep of tests/test_malformed.py cannot sign; this one can: malformed forms,
    signed or not, get a 4xx in the error shape and leave the delivery log empty."""
    creds, provider = await twilio_app(api)
    url = f"http://herald.test/v3/providers/{provider['id']}/callback"
    bodies = {
        "empty": b"",
        "no status": b"MessageSid=SM1",
        "no sid": b"MessageStatus=delivered",
        "non-UTF-8": b"MessageSid=%FF%FE&MessageStatus=delivered\xff",
        "NUL": b"MessageSid=SM%00&MessageStatus=deli%00vered",
        "JSON": b'{"MessageSid": "SM1", "MessageStatus": "delivered"}',
        "201 fields": "&".join(f"f{i}=v" for i in range(201)).encode(),
        "huge ErrorCode": b"MessageSid=SM1&MessageStatus=undelivered&ErrorCode=" + b"9" * 5000,
        "inbound from nowhere": b"SmsStatus=received&From=%00&Body=STOP",
    }
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for label, body in bodies.items():
        try:
            params = callbacks.form_fields(body)
        except BadRequest:  # more fields than a callback has: refused before the signature
            params = []
        for signed in (False, True):
            signature = twilio.signature(TOKEN, url, params) if signed else "bogus"
            answer = await api.post(
                url, content=body, headers={**form, "X-Twilio-Signature": signature}
            )
            if label == "inbound from nowhere" and signed:
                assert answer.status_code == 204, answer.text  # ignored, nothing to do
                continue
            assert 400 <= answer.status_code < 500, (label, signed, answer.text)
            assert answer.json()["status"] == "error", (label, signed)
    listed = await api.get(f"/admin/apps/{creds.id}/deliveries", headers=ADMIN)
    assert listed.json()["data"] == []
