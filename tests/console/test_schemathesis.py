"""schemathesis against a real `herald serve`: no answer contradicts the OpenAPI document.

Every operation is called with generated requests under app, user and admin credentials: valid
and invalid ones with each credential the operation accepts, a few valid ones with each it
refuses (those end at the 401). Each answer must have a documented status, content type and
body schema, and none may be a server error. Hypothesis runs derandomized with a fixed example
budget, so a run sends the same requests every time; HERALD_SCHEMATHESIS_EXAMPLES=200 digs
deeper.

The server runs on a database of its own: admin operations with generated ids rotate, patch and
delete whatever apps they hit, which must never be another test's. They run last, since they
may also break the credentials the other runs use."""

import asyncio
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.runtime import migrate
from tests import db
from tests.conftest import ADMIN_TOKEN
from tests.factories import Creds, send_body
from tests.live import running_server

pytestmark = pytest.mark.live

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
USER = "alice"
# Examples per operation and generation mode with credentials it accepts, and with each it
# refuses. More find more, slowly.
EXAMPLES = int(os.environ.get("HERALD_SCHEMATHESIS_EXAMPLES", "10"))
REFUSED_EXAMPLES = 2
# The security schemes each kind of caller sends.
SENDS = {"app": {"apiKey", "apiSecret"}, "user": {"apiKey", "userId"}, "admin": {"adminToken"}}


@dataclass
class Tally:
    operations: int = 0
    runs: int = 0
    nothing_to_negate: int = 0
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def herald(server_url: str) -> Iterator[str]:
    name = f"herald_test_schemathesis_{os.getpid()}"
    url = asyncio.run(db.recreate(server_url, name))
    try:
        migrate(url)
        with running_server(url, admin_token=ADMIN_TOKEN) as base:
            yield base
    finally:
        asyncio.run(db.drop(server_url, name))


def credentials(base: str) -> dict[str, dict[str, str]]:
    """An app with a user who has notifications, a topic and a category, so that small
    generated ids find rows; the headers of each kind of caller."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    made = httpx.post(f"{base}/admin/apps", json={"name": "schemathesis"}, headers=admin)
    assert made.status_code == 201, made.text
    app = Creds(made.json()["id"], made.json()["apiKey"], made.json()["apiSecret"])
    for title in ("One", "Two", "Three"):
        sent = httpx.post(
            f"{base}/v3/notifications", json=send_body(USER, title=title), headers=app.backend()
        )
        assert sent.status_code == 202, sent.text
    for path, body in (("/v3/topics", {"name": "News"}), ("/v3/categories", {"identifier": "c"})):
        assert httpx.post(f"{base}{path}", json=body, headers=app.backend()).is_success
    return {"app": app.backend(), "user": app.user(USER), "admin": admin}


def accepts(operation: Any, who: str) -> bool:
    """Whether the caller's schemes satisfy one of the operation's security requirements."""
    requirements = operation.definition.raw.get("security", [{}])
    return any(set(requirement) <= SENDS[who] for requirement in requirements)


def run(
    operation: Any,
    mode: GenerationMode,
    examples: int,
    headers: dict[str, str],
    call: Callable[[Any, dict[str, str]], None],
    label: str,
    tally: Tally,
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        # No shrinking: against a server whose state moves, a shrunk example may not fail.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    def example(case: Any) -> None:
        call(case, headers)

    tally.runs += 1
    try:
        example()
    except Unsatisfiable:
        # No parameters and no body: there is nothing to make invalid.
        assert mode is GenerationMode.NEGATIVE, label
        tally.nothing_to_negate += 1
    except (FailureGroup, AssertionError) as exc:  # a check failed: go on, report them all
        tally.failures.append(f"{label}: {exc}"[:3000])


def test_no_answer_contradicts_the_document(herald: str) -> None:
    callers = credentials(herald)
    schema = schemathesis.openapi.from_url(f"{herald}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"schemathesis cannot read an operation: {result.err()}"
        operations.append(result.ok())
    # Admin operations last: they may rotate or delete the app the other runs call as.
    operations.sort(key=lambda op: op.path.startswith("/admin/"))
    tally = Tally(operations=len(operations))
    with requests.Session() as session:

        def call(case: Any, headers: dict[str, str]) -> None:
            response = case.call(base_url=herald, session=session, headers=headers)
            tally.requests += 1
            tally.statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS)

        for operation in operations:
            for who, headers in callers.items():
                plan = [(GenerationMode.POSITIVE, REFUSED_EXAMPLES)]
                if accepts(operation, who):
                    plan = [(mode, EXAMPLES) for mode in GenerationMode]
                for mode, examples in plan:
                    label = f"{operation.label} as {who}, {mode.value}"
                    run(operation, mode, examples, headers, call, label, tally)

    server_errors = {s: n for s, n in tally.statuses.items() if s >= 500}
    summary = (
        f"{tally.operations} operations, {tally.runs} runs "
        f"({tally.nothing_to_negate} with nothing to negate), {tally.requests} requests, "
        f"statuses {dict(sorted(tally.statuses.items()))}, {len(tally.failures)} failures"
    )
    print(summary)
    assert server_errors == {}, summary
    assert not tally.failures, summary + "\n\n" + "\n\n".join(tally.failures)
    assert tally.operations >= 50, summary
    assert tally.requests >= tally.operations * (EXAMPLES + REFUSED_EXAMPLES), summary
