"""The web-push message within 4096 bytes once encrypted, what gets shortened first, and the
VAPID token's reuse; every body is decrypted with the RFC 8291 decryptor of the test peer."""

import json
import os
import re
from typing import Any

import jwt
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec

from app.apps.keys import new_vapid_pair
from app.delivery.channels import vapid, webpush
from app.delivery.channels.base import WebPushFacts
from tests.delivery.webpush_peer import Browser, rfc8291_decrypt, unb64url

PUBLIC, PRIVATE = new_vapid_pair()
FACTS = WebPushFacts(
    api_key="k" * 32,
    api_secret="s" * 64,
    vapid_public_key=PUBLIC,
    vapid_private_key=PRIVATE,
    inbox_id=2**62,
)
USER = "u" * 255  # the longest identifier Herald takes


def delivered(content: dict[str, Any], user: str = USER) -> dict[str, Any]:
    """Build, encrypt, check the size, decrypt: what the service worker gets."""
    browser = Browser("https://push.test/x")
    _, public, auth = webpush.subscription(json.dumps(browser.subscription()))
    body = webpush.encrypt(webpush.payload(FACTS, user, content), public, auth)
    assert len(body) <= webpush.MAX_BODY
    customer: dict[str, Any] = json.loads(rfc8291_decrypt(body, browser.key, browser.auth))["data"][
        "customerData"
    ]
    return customer


def test_the_largest_plaintext_fills_exactly_4096_bytes() -> None:
    browser = Browser("https://push.test/x")
    _, public, auth = webpush.subscription(json.dumps(browser.subscription()))
    plaintext = os.urandom(webpush.MAX_PLAINTEXT)
    body = webpush.encrypt(plaintext, public, auth)
    assert len(body) == 4096
    assert rfc8291_decrypt(body, browser.key, browser.auth) == plaintext
    # The decryptor is not a pass-through: another browser's secret does not open it.
    with pytest.raises(InvalidTag):
        rfc8291_decrypt(body, browser.key, os.urandom(16))


def test_small_content_is_sent_whole() -> None:
    content = {
        "title": "Hi",
        "message": "there",
        "icon": "https://a.io/i.png",
        "url": "https://a.io",
    }
    assert delivered(content) == {
        "id": 2**62,
        "title": "Hi",
        "body": "there",
        "icon": "https://a.io/i.png",
        "url": "https://a.io",
    }


def test_a_long_body_is_shortened_first_and_the_rest_kept() -> None:
    content = {
        "title": "Weekly digest",
        "message": "é" * 10_000,  # two bytes each
        "icon": "https://a.io/i.png",
        "url": "https://a.io/d",
    }
    got = delivered(content)
    assert (got["title"], got["icon"], got["url"]) == (
        "Weekly digest",
        "https://a.io/i.png",
        "https://a.io/d",
    )
    assert got["body"].endswith("…")
    assert set(got["body"][:-1]) == {"é"}
    # As long as it could be: one more character would not fit.
    assert len(got["body"]) > 1500


def test_an_oversized_link_is_dropped_and_the_icon_and_body_kept() -> None:
    content = {
        "title": "T",
        "message": "short body",
        "icon": "https://a.io/i.png",
        "url": "https://a.io/" + "x" * 5000,
    }
    assert delivered(content) == {
        "id": 2**62,
        "title": "T",
        "body": "short body",
        "icon": "https://a.io/i.png",
        "url": None,
    }


def test_an_oversized_title_goes_last_and_stays_valid_text() -> None:
    content = {"title": "通知" * 3000, "message": "b", "icon": "https://a.io/" + "i" * 4000}
    got = delivered(content)
    assert got["body"] == ""
    assert got["icon"] is None
    assert got["title"].endswith("…")
    assert got["title"].startswith("通知通知")


def test_a_megabyte_title_is_cut_quickly() -> None:
    got = delivered({"title": "t" * 1_000_000, "message": "m" * 1_000_000})
    assert got["title"].startswith("ttt")
    assert len(got["title"]) > 3000


def test_malformed_subscriptions_are_named() -> None:
    browser = Browser("https://push.test/x")
    good = browser.subscription()
    for keys, problem in (
        ({**good["keys"], "auth": "c2hvcnQ"}, "keys.auth is not 16 bytes"),
        ({**good["keys"], "p256dh": "BPk"}, "not an uncompressed P-256 point"),
        ({**good["keys"], "p256dh": "BA" + "A" * 85}, "not a point on P-256"),
        ({"auth": good["keys"]["auth"]}, "is not endpoint + keys.p256dh + keys.auth"),
    ):
        with pytest.raises(ValueError, match=re.escape(problem)):
            webpush.subscription(json.dumps({**good, "keys": keys}))


def test_the_vapid_token_is_reused_per_origin_and_renewed_before_it_expires() -> None:
    now = 1_900_000_000.0

    def header(audience: str, at: float) -> str:
        return vapid.authorization(
            private_pem=PRIVATE,
            public_key=PUBLIC,
            audience=audience,
            subject="mailto:ops@acme.io",
            now=at,
        )

    first = header("https://fcm.googleapis.com", now)
    assert header("https://fcm.googleapis.com", now + 3600) == first
    assert header("https://updates.push.services.mozilla.com", now) != first
    renewed = header("https://fcm.googleapis.com", now + vapid.LIFETIME - vapid.RENEW_BEFORE + 1)
    assert renewed != first
    token = renewed.split("t=", 1)[1].split(",", 1)[0]
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(PUBLIC))
    claims = jwt.decode(
        token,
        key,
        algorithms=["ES256"],
        audience="https://fcm.googleapis.com",
        options={"verify_exp": False},
    )
    assert claims["sub"] == "mailto:ops@acme.io"
    assert claims["exp"] - (now + vapid.LIFETIME - vapid.RENEW_BEFORE + 1) <= 24 * 3600


@pytest.mark.parametrize(
    ("endpoint", "origin"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc", "https://fcm.googleapis.com"),
        ("https://Push.Example.NET:443/a?b", "https://push.example.net"),
        ("https://127.0.0.1:8443/push/x", "https://127.0.0.1:8443"),
        ("https://[::1]:8443/p", "https://[::1]:8443"),
    ],
)
def test_the_audience_is_the_endpoints_origin(endpoint: str, origin: str) -> None:
    assert vapid.origin(endpoint) == origin
