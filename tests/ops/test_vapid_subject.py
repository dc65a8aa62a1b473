"""HERALD_VAPID_SUBJECT: a contact push services accept, or one clear line at start."""

import pytest
from pydantic import ValidationError

from app.config import Settings
from app.ops.problems import settings_problem
from tests.ops.support import herald

EX_CONFIG = 78
RESERVED = (
    "is a local or reserved domain; push services (Apple's: BadJwtToken) refuse it: use a "
    "contact on your own domain"
)


def test_a_localhost_subject_stops_the_start_with_one_line() -> None:
    run = herald("serve", env={"HERALD_VAPID_SUBJECT": "mailto:admin@localhost"})
    assert "Traceback" not in run.output, run.output
    assert run.code == EX_CONFIG, run.output
    assert run.stderr.splitlines() == [
        f"herald: HERALD_VAPID_SUBJECT: localhost {RESERVED} (got 'mailto:admin@localhost')"
    ]


@pytest.mark.parametrize(
    ("subject", "problem"),
    [
        ("mailto:me@box.local", f"box.local {RESERVED}"),
        ("mailto:me@example.com", f"example.com {RESERVED}"),
        ("https://push.example.net/contact", f"push.example.net {RESERVED}"),
        ("mailto:me@example.org", f"example.org {RESERVED}"),
        ("mailto:me@ci.test", f"ci.test {RESERVED}"),
        ("mailto:me@nowhere.invalid", f"nowhere.invalid {RESERVED}"),
        ("https://shop.example", f"shop.example {RESERVED}"),
        ("https://LOCALHOST.:8443", f"localhost {RESERVED}"),
        ("https://10.0.0.7", f"10.0.0.7 {RESERVED}"),
        ("http://acme.io", "must be a mailto: or https: contact, e.g. mailto:ops@yourcompany.com"),
        ("ops@acme.io", "must be a mailto: or https: contact, e.g. mailto:ops@yourcompany.com"),
        ("mailto:acme.io", "must be mailto:<address>, e.g. mailto:ops@yourcompany.com"),
        ("https://", "must be an https: URL with a host, e.g. https://yourcompany.com"),
    ],
)
def test_unusable_subjects_are_refused(subject: str, problem: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(vapid_subject=subject)
    assert str(settings_problem(refused.value)) == (
        f"HERALD_VAPID_SUBJECT: {problem} (got {subject!r})"
    )


@pytest.mark.parametrize(
    "subject", ["mailto:ops@acme.io", "https://acme.io/push-contact", " mailto:Ops@Acme.IO "]
)
def test_public_contacts_are_kept(subject: str) -> None:
    assert Settings(vapid_subject=subject).vapid_subject == subject.strip()


def test_unset_or_empty_means_web_push_is_off() -> None:
    assert Settings().vapid_subject is None
    assert Settings(vapid_subject="  ").vapid_subject is None
