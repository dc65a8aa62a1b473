"""A robustness sweep: every route, fed malformed input with valid credentials, answers 4xx.

Routes come from the published OpenAPI document, so a new route is swept as soon as it exists.
For each one the sweep breaks one thing at a time (the body, one body value, one path
parameter, one query parameter, one header) and checks that the answer is never a 5xx, that
every error is in Engagespot's shape, and that a refused request changed nothing in the
database. Each family ends with the valid request, which must succeed: the refusals are then
about the malformed input, not about a broken fixture."""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.config import Settings
from app.main import create_app
from tests.factories import Creds, rsa_pair

SPEC: dict[str, Any] = create_app(Settings(admin_token=None, database_url=None)).openapi()
PUBLIC_KEY, _ = rsa_pair()
LONG = "x" * 10_000
# Routes that read an optional JSON object (or a form) from the raw request themselves.
READS_OWN_BODY = {
    ("POST", "/v3/notifications/{notification_id}/click"),
    ("PATCH", "/v3/notifications/{notification_id}/click"),
    ("POST", "/v3/sdk/connect"),
}

# Routes a provider calls, signed with its own secret (X-Twilio-Signature over a form): the
# sweep cannot sign, so all its cases are refused and there is no valid control request here;
# tests/delivery/test_sms_rules.py sweeps the signed ones.
SIGNED_BY_PROVIDER = {("POST", "/v3/providers/{provider_id}/callback")}

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    params: dict[str, dict[str, Any]]  # name -> {"in": "path"|"query", "schema": …}
    body: str  # "none", "optional", "required"
    declared_json: bool  # the body is declared in OpenAPI (validated by FastAPI)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def admin(self) -> bool:
        return self.path.startswith("/admin")


def operations() -> list[Op]:
    ops = []
    for path, methods in SPEC["paths"].items():
        if not path.startswith(("/v3", "/v4", "/admin")):
            continue
        for method, op in methods.items():
            params = {
                p["name"]: {"in": p["in"], "schema": p["schema"]}
                for p in op.get("parameters", [])
                if p["in"] in ("path", "query")
            }
            declared = op.get("requestBody")
            if declared:
                body = "required" if declared.get("required") else "optional"
            elif (method.upper(), path) in READS_OWN_BODY:
                body = "optional"
            else:
                body = "none"
            ops.append(Op(method.upper(), path, params, body, bool(declared)))
    return ops


OPS = operations()


@dataclass
class World:
    creds: Creds
    ids: dict[str, str]  # path parameter -> a value naming something that exists

    def url(self, op: Op, **override: str) -> str:
        return op.path.format(**{**self.ids, **override})


@dataclass(frozen=True)
class Template:
    """A valid body; `identifiers` name leaves that must be refused when 10k long, `free`
    leaves whose value is not stored (a NUL there may be accepted)."""

    body: Callable[[World], Any]
    identifiers: frozenset[Path] = frozenset()
    free: frozenset[Path] = frozenset()


def _t(
    body: Callable[[World], Any], identifiers: tuple[Path, ...] = (), free: tuple[Path, ...] = ()
) -> Template:
    return Template(body, frozenset(identifiers), frozenset(free))


_CANCEL = _t(
    lambda w: {"cancellationKey": "ck-1", "cancelFor": {"recipients": ["alice"]}},
    (("cancellationKey",), ("cancelFor", "recipients", 0)),
)

TEMPLATES: dict[tuple[str, str], Template] = {
    ("POST", "/v3/notifications"): _t(
        lambda w: {
            "notification": {
                "title": "Title",
                "message": "Message",
                "url": "https://app.test/a",
                "icon": "https://app.test/i.png",
                "category": "cat",
                "data": {"k": "v", "n": 1, "f": 1.5},
            },
            "sendTo": {"recipients": ["alice", {"identifier": "bob", "email": "bob@x.test"}]},
            "data": {"top": "level"},
        },
        (
            ("notification", "category"),
            ("sendTo", "recipients", 0),
            ("sendTo", "recipients", 1, "identifier"),
        ),
    ),
    ("PUT", "/v3/notifications/{notification_id}/state"): _t(
        lambda w: {"state": "archived", "data": {"k": "v"}}, (("state",),)
    ),
    ("POST", "/v3/notifications/{notification_id}/click"): _t(
        lambda w: {"read": True}, free=(("read",),)
    ),
    ("PATCH", "/v3/notifications/{notification_id}/click"): _t(
        lambda w: {"read": True}, free=(("read",),)
    ),
    ("POST", "/v3/sdk/connect"): _t(
        lambda w: {"deviceType": "browser", "browserType": "chrome"},
        (("deviceType",), ("browserType",)),
    ),
    ("POST", "/v3/categories"): _t(
        lambda w: {"identifier": "cat2", "name": "Category 2"}, (("identifier",), ("name",))
    ),
    ("PATCH", "/v3/categories/{category_id}"): _t(lambda w: {"name": "Renamed"}, (("name",),)),
    ("POST", "/v3/users"): _t(
        lambda w: {"identifier": "bob", "profile": {"email": "bob@x.test", "n": 2}},
        (("identifier",),),
    ),
    ("PUT", "/v3/users/{identifier}"): _t(lambda w: {"email": "a@x.test", "nested": {"k": "v"}}),
    ("PUT", "/v3/profile"): _t(lambda w: {"name": "Alice", "n": 3}),
    ("PATCH", "/v3/profile"): _t(lambda w: [{"op": "add", "path": "/name", "value": "Alice"}]),
    ("PATCH", "/v3/preferences"): _t(
        lambda w: {
            "preference": [
                {
                    "categoryId": int(w.ids["category_id"]),
                    "channels": [{"channel": "inApp", "enabled": False}],
                }
            ]
        }
    ),
    ("POST", "/v3/devices/{device_id}/webPushSubscription"): _t(
        lambda w: {
            "endpoint": "https://push.test/abc",
            "expirationTime": None,
            "keys": {"p256dh": "BPk", "auth": "au"},
        },
        (("endpoint",), ("keys", "p256dh"), ("keys", "auth")),
    ),
    ("POST", "/v3/topics"): _t(
        lambda w: {"name": "Sports", "identifier": "sports"}, (("name",), ("identifier",))
    ),
    ("PATCH", "/v3/topics/{topic_id}"): _t(lambda w: {"name": "Renamed"}, (("name",),)),
    ("POST", "/v3/topics/{topic_id}/users"): _t(
        lambda w: {"users": [{"identifier": "alice", "channels": ["inApp"]}]},
        (("users", 0, "identifier"), ("users", 0, "channels", 0)),
    ),
    ("POST", "/v3/topics/{topic_id}/detachUsers"): _t(
        lambda w: {"users": ["alice"]}, (("users", 0),)
    ),
    ("PUT", "/v3/topics/{topic_id}/users/{identifier}"): _t(
        lambda w: {"channels": ["inApp", "email"]}, (("channels", 0),)
    ),
    ("PATCH", "/v4/workflows/{identifier}"): _CANCEL,
    ("POST", "/v4/workflows/{identifier}/cancel-run"): _CANCEL,
    ("PATCH", "/v4/workflows/{identifier}/cancel-run"): _CANCEL,
    ("POST", "/admin/apps"): _t(lambda w: {"name": "New app"}, (("name",),)),
    ("PATCH", "/admin/apps/{app_id}"): _t(
        lambda w: {"name": "Renamed", "hmacEnabled": False, "channels": ["inApp"]},
        (("name",), ("channels", 0)),
    ),
    ("POST", "/admin/apps/{app_id}/signing-keys"): _t(
        lambda w: {"publicKey": PUBLIC_KEY}, (("publicKey",),)
    ),
    ("POST", "/admin/apps/{app_id}/channels/{channel}/providers"): _t(
        lambda w: {
            "provider": "default_webhook",
            "name": "Hook",
            "config": {"SIGNING_KEY": "k", "WEBHOOK_URL": "https://hooks.test/x"},
            "priority": 2,
        },
        (("provider",), ("name",), ("config", "WEBHOOK_URL")),
    ),
    ("PATCH", "/admin/apps/{app_id}/providers/{provider_id}"): _t(
        lambda w: {"name": "Renamed", "config": {"SIGNING_KEY": "k2"}, "rateLimit": 5},
        (("name",), ("config", "SIGNING_KEY")),
    ),
}


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
async def world(client: httpx.AsyncClient, creds: Creds, admin: dict[str, str]) -> World:
    """An app where every path parameter names something that exists."""
    h = creds.backend()

    async def ok(method: str, url: str, body: object = None) -> dict[str, Any]:
        r = await client.request(method, url, json=body, headers=h)
        assert r.status_code < 300, r.text
        found: dict[str, Any] = r.json()
        return found

    category = await ok("POST", "/v3/categories", {"identifier": "cat"})
    sent = await ok(
        "POST",
        "/v3/notifications",
        {"notification": {"title": "Hi", "category": "cat"}, "sendTo": {"recipients": ["alice"]}},
    )
    page = await ok("GET", "/v3/notifications?userIdentifier=alice")
    topic = await ok("POST", "/v3/topics", {"name": "News", "identifier": "news"})
    await ok("POST", f"/v3/topics/{topic['id']}/users", {"users": [{"identifier": "alice"}]})
    r = await client.post(
        "/v3/devices/device-1/webPushSubscription",
        json=TEMPLATES[("POST", "/v3/devices/{device_id}/webPushSubscription")].body(
            World(creds, {})
        ),
        headers=creds.user("alice"),
    )
    assert r.status_code == 200, r.text
    provider = await client.post(
        f"/admin/apps/{creds.id}/channels/webhook/providers",
        json={"provider": "default_webhook", "config": {"SIGNING_KEY": "k"}},
        headers=admin,
    )
    assert provider.status_code == 201, provider.text
    return World(
        creds,
        {
            "channel": "webhook",
            "provider_id": str(provider.json()["id"]),
            "notification_id": str(page["data"][0]["id"]),
            "category_id": str(category["id"]),
            "topic_id": str(topic["id"]),
            "app_id": str(creds.id),
            "identifier": "alice",
            "device_id": "device-1",
            "request_id": sent["requestId"],
        },
    )


def credentials(op: Op, world: World, admin: dict[str, str]) -> dict[str, str]:
    if op.admin:
        return dict(admin)
    # Key + secret + user id: passes both the backend and the inbox routes.
    return {**world.creds.backend(), "X-ENGAGESPOT-USER-ID": "alice"}


def connection(session: AsyncSession) -> AsyncConnection:
    """The connection the test and the app under test share (see conftest.session)."""
    conn: AsyncConnection = session.info["maker"].kw["bind"]
    return conn


async def snapshot(conn: AsyncConnection, app_id: int) -> str:
    """A fingerprint of every table's rows that belong to app `app_id`, and of the apps
    table: any change to any of them changes it.

    Other apps' rows are left out because a live server started by other tests may still be
    working on its own (its queue worker updates requests it committed); for the same reason
    PgQueuer's tables are left out (a send writes its request row with its job, so a job
    written by a refused request would still show)."""
    tables = await conn.execute(
        text(
            "SELECT c.relname, array_agg(a.attname::text) FROM pg_class c"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
            " WHERE c.relnamespace = current_schema()::regnamespace"
            " AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            " GROUP BY c.relname ORDER BY c.relname"
        )
    )
    parts = []
    for table, columns in tables:
        if table == "alembic_version" or table.startswith("pgqueuer"):
            continue
        if table == "apps":
            where = "true"
        elif "app_id" in columns:
            where = "app_id = :app"
        elif "user_id" in columns:
            where = "user_id IN (SELECT id FROM users WHERE app_id = :app)"
        elif "topic_id" in columns:
            where = "topic_id IN (SELECT id FROM topics WHERE app_id = :app)"
        else:
            where = "true"
        parts.append(
            f"SELECT '{table}:' || md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), ''))"
            f" AS d FROM {table} r WHERE {where}"
        )
    union = " UNION ALL ".join(parts)
    digest = await conn.scalar(text(f"SELECT string_agg(d, ',') FROM ({union}) s"), {"app": app_id})
    return str(digest)


@dataclass
class Sweep:
    """Sends cases, each in a savepoint rolled back afterwards so every case meets the same
    world, and collects every broken expectation to report them all at once."""

    client: httpx.AsyncClient
    session: AsyncSession
    op: Op
    app_id: int
    failures: list[str] = field(default_factory=list)
    baseline: str | None = None

    @property
    def conn(self) -> AsyncConnection:
        return connection(self.session)

    async def send(
        self,
        label: str,
        url: str,
        headers: dict[str, str] | list[tuple[bytes, bytes]],
        *,
        content: bytes | None = None,
        strict: bool,
    ) -> None:
        """Send one case. strict: it must be a 4xx; otherwise any non-5xx answer will do."""
        if self.baseline is None:
            # Every case starts from this state: the savepoint undoes whatever a case did.
            self.baseline = await snapshot(self.conn, self.app_id)
        savepoint = await self.conn.begin_nested()
        try:
            await self._send(label, url, headers, content, strict, self.baseline)
        finally:
            await savepoint.rollback()

    async def _send(
        self,
        label: str,
        url: str,
        headers: dict[str, str] | list[tuple[bytes, bytes]],
        content: bytes | None,
        strict: bool,
        before: str,
    ) -> None:
        try:
            r = await self.client.request(self.op.method, url, headers=headers, content=content)
        except Exception as exc:  # an exception escaping the app is a 500 the client never saw
            self.failures.append(f"{label}: raised {exc!r}"[:300])
            return
        status = r.status_code
        if status >= 500 or (strict and not 400 <= status < 500):
            self.failures.append(f"{label}: {status} {r.text[:200]}")
        if status >= 400:
            problem = _shape_problem(r)
            if problem:
                self.failures.append(f"{label}: {status} {problem}")
            if await snapshot(self.conn, self.app_id) != before:
                self.failures.append(f"{label}: refused with {status} but the database changed")

    async def control(self, url: str, headers: dict[str, str], body: Any = None) -> None:
        if (self.op.method, self.op.path) in SIGNED_BY_PROVIDER:
            return
        content = None if body is None else json.dumps(body).encode()
        hdrs = {**headers, "Content-Type": "application/json"} if body is not None else headers
        r = await self.client.request(self.op.method, url, headers=hdrs, content=content)
        if not 200 <= r.status_code < 300:
            self.failures.append(f"valid request: {r.status_code} {r.text[:300]}")

    def check(self) -> None:
        assert not self.failures, f"{self.op.id}:\n  " + "\n  ".join(self.failures)


def _shape_problem(r: httpx.Response) -> str | None:
    try:
        body = r.json()
    except ValueError:
        return f"error body is not JSON: {r.text[:100]!r}"
    if not isinstance(body, dict) or body.get("status") != "error":
        return f"error body lacks status=error: {r.text[:100]!r}"
    message = body.get("message")
    ok = (isinstance(message, str) and message) or (
        isinstance(message, list) and message and all(isinstance(m, str) for m in message)
    )
    return None if ok else f"error message is not a string or list of strings: {message!r}"


JSON = {"Content-Type": "application/json"}


# --- the body as a whole ----------------------------------------------------------------------


def body_cases(op: Op, valid: bytes) -> Iterator[tuple[str, bytes, dict[str, str], bool]]:
    """(label, raw body, extra headers, strict) for one route that takes a body."""
    required = op.body == "required"
    json_only = op.declared_json
    deep = 100_000
    yield "invalid JSON", b'{"notification": ', JSON, True
    yield "truncated JSON", valid[: max(1, len(valid) // 2)], JSON, True
    yield "trailing garbage", valid + b" }{", JSON, True
    yield "JSON array", b"[1, 2]", JSON, True
    yield "JSON string", b'"text"', JSON, True
    yield "JSON number", b"42", JSON, True
    yield "JSON true", b"true", JSON, True
    yield "JSON null", b"null", JSON, required
    yield "empty body", b"", JSON, required
    yield "non-UTF-8 bytes", b'{"name": "\xff\xfe\xfd"}', JSON, True
    yield "lone surrogate escape", b'{"name": "\\ud800"}', JSON, True
    yield "NUL byte in the raw body", b'{"name": "a\x00b"}', JSON, True
    yield "deeply nested", b'{"a":' * deep + b"1" + b"}" * deep, JSON, True
    yield "deeply nested array", b"[" * deep + b"]" * deep, JSON, True
    yield "NaN", b'{"n": NaN}', JSON, True
    yield (
        "form body",
        b"name=x&title=y",
        {"Content-Type": "application/x-www-form-urlencoded"},
        (json_only),
    )
    yield (
        "multipart body",
        b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--b--\r\n',
        {"Content-Type": "multipart/form-data; boundary=b"},
        json_only,
    )
    yield "text/plain JSON", valid, {"Content-Type": "text/plain"}, False
    yield "XML", b"<a>1</a>", {"Content-Type": "application/xml"}, json_only
    yield "JSON without content type", valid, {}, False
    yield "UTF-16 JSON", valid.decode().encode("utf-16"), JSON, False


@pytest.fixture
def sweep(client: httpx.AsyncClient, session: AsyncSession, world: World, op: Op) -> Sweep:
    """A fresh sweep of the parametrized `op` in `world`."""
    return Sweep(client, session, op, world.creds.id)


def _with_template(
    op: Op, world: World, headers: dict[str, str]
) -> tuple[dict[str, str], bytes | None, Any]:
    """For an op with a template body: `headers` with a JSON content type, the body encoded,
    and the body; otherwise `headers` as they are, None and None."""
    template = TEMPLATES.get((op.method, op.path))
    if template is None:
        return headers, None, None
    valid = template.body(world)
    return {**headers, **JSON}, json.dumps(valid).encode(), valid


BODY_OPS = [op for op in OPS if op.body != "none"]


@pytest.mark.parametrize("op", BODY_OPS, ids=lambda op: op.id)
async def test_malformed_bodies(sweep: Sweep, world: World, admin: dict[str, str], op: Op) -> None:
    headers = credentials(op, world, admin)
    template = TEMPLATES.get((op.method, op.path))
    valid_body = template.body(world) if template else {}
    valid = json.dumps(valid_body).encode()
    for label, raw, extra, strict in body_cases(op, valid):
        await sweep.send(label, world.url(op), {**headers, **extra}, content=raw, strict=strict)
    if template:
        await sweep.control(world.url(op), headers, valid_body)
    sweep.check()


# --- one value inside a valid body ------------------------------------------------------------

SENTINEL = "__sweep_sentinel__"


def leaves(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, (*path, i))
    else:
        yield path, value


def keys(value: Any, path: Path = ()) -> Iterator[Path]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*path, k)
            yield from keys(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from keys(v, (*path, i))


def replaced(value: Any, path: Path, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: replaced(v, rest, new) if k == head else v for k, v in value.items()}
    return [replaced(v, rest, new) if i == head else v for i, v in enumerate(value)]


def renamed(value: Any, path: Path, new_key: str) -> Any:
    head, rest = path[0], path[1:]
    if not rest:
        return {(new_key if k == head else k): v for k, v in value.items()}
    if isinstance(value, dict):
        return {k: renamed(v, rest, new_key) if k == head else v for k, v in value.items()}
    return [renamed(v, rest, new_key) if i == head else v for i, v in enumerate(value)]


# Raw JSON tokens put where a value was: numbers PostgreSQL or Python cannot hold.
RAW_NUMBERS = {
    "2**64": str(2**64),
    "-2**63-1": str(-(2**63) - 1),
    "1e400": "1e400",
    "-1e400": "-1e400",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "5000 digits": "1" + "0" * 4999,
}


def nested(levels: int) -> Any:
    """A value `levels` containers deep (the body around it adds its own)."""
    value: Any = 1
    for i in range(levels):
        value = {"k": value} if i % 2 else [value]
    return value


TEMPLATE_OPS = [op for op in OPS if (op.method, op.path) in TEMPLATES]


@pytest.mark.parametrize("op", TEMPLATE_OPS, ids=lambda op: op.id)
async def test_malformed_values(sweep: Sweep, world: World, admin: dict[str, str], op: Op) -> None:
    headers = {**credentials(op, world, admin), **JSON}
    template = TEMPLATES[(op.method, op.path)]
    valid = template.body(world)
    url = world.url(op)

    async def send(label: str, body: Any, *, strict: bool, raw: str | None = None) -> None:
        content = json.dumps(body)
        if raw is not None:
            content = content.replace(json.dumps(SENTINEL), raw)
        await sweep.send(label, url, headers, content=content.encode(), strict=strict)

    for path, value in leaves(valid):
        where = ".".join(map(str, path)) or "body"
        if isinstance(value, str):
            free = path in template.free
            await send(f"NUL in {where}", replaced(valid, path, "a\u0000b"), strict=not free)
            await send(f"NUL alone in {where}", replaced(valid, path, "\u0000"), strict=not free)
            long = path in template.identifiers
            await send(f"10k chars in {where}", replaced(valid, path, LONG), strict=long)
            await send(f"object in {where}", replaced(valid, path, {"a": 1}), strict=False)
            surrogate = replaced(valid, path, SENTINEL)
            await send(f"lone surrogate in {where}", surrogate, strict=not free, raw='"a\\ud800"')
        await send(f"101 levels in {where}", replaced(valid, path, nested(101)), strict=True)
        await send(f"90 levels in {where}", replaced(valid, path, nested(90)), strict=False)
        for name, raw in RAW_NUMBERS.items():
            body = replaced(valid, path, SENTINEL)
            await send(f"{name} in {where}", body, strict=False, raw=raw)
    for path in keys(valid):
        where = ".".join(map(str, path))
        await send(f"NUL in key {where}", renamed(valid, path, f"{path[-1]}\u0000"), strict=False)
    await sweep.control(url, credentials(op, world, admin), valid)
    sweep.check()


# --- path parameters --------------------------------------------------------------------------

BAD_INTEGERS = {
    "zero": "0",
    "negative": "-1",
    "2**63": str(2**63),
    "2**64": str(2**64),
    "30 digits": "9" * 30,
    "10k digits": "9" * 10_000,
    "not a number": "abc",
    "decimal": "1.5",
    "exponent": "1e3",
    "hex": "0x10",
    "NUL": "1%00",
    "fullwidth digit": "%EF%BC%91",
    "non-UTF-8": "%FF%FE",
}
BAD_STRINGS = {
    "10k chars": (LONG, True),
    "NUL": ("a%00b", True),
    "only NUL": ("%00", True),
    "non-UTF-8": ("%FF%FE", False),
    "dot segments": ("..%2F..%2Fadmin", False),
    "encoded slash": ("a%2Fb", False),
    "spaces": ("%20%20", False),
}

PATH_OPS = [op for op in OPS if any(p["in"] == "path" for p in op.params.values())]


@pytest.mark.parametrize("op", PATH_OPS, ids=lambda op: op.id)
async def test_malformed_path_parameters(
    sweep: Sweep, world: World, admin: dict[str, str], op: Op
) -> None:
    headers, body, valid = _with_template(op, world, credentials(op, world, admin))
    for name, param in op.params.items():
        if param["in"] != "path":
            continue
        kind = param["schema"].get("type")
        fmt = param["schema"].get("format")
        if kind == "integer":
            cases = {label: (value, True) for label, value in BAD_INTEGERS.items()}
        elif fmt == "uuid":
            cases = {"not a uuid": ("abc", True), "NUL": ("%00", True), "long": (LONG, True)}
        else:
            cases = BAD_STRINGS
        for label, (value, strict) in cases.items():
            url = world.url(op, **{name: value})
            await sweep.send(f"{name} {label}", url, headers, content=body, strict=strict)
    await sweep.control(world.url(op), credentials(op, world, admin), valid)
    sweep.check()


# --- query parameters -------------------------------------------------------------------------

QUERY_OPS = [op for op in OPS if any(p["in"] == "query" for p in op.params.values())]


def _variants(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an Optional[...] schema."""
    for branch in schema.get("anyOf", []):
        if branch.get("type") != "null":
            return dict(branch)
    return schema


@pytest.mark.parametrize("op", QUERY_OPS, ids=lambda op: op.id)
async def test_malformed_query_parameters(
    sweep: Sweep, world: World, admin: dict[str, str], op: Op
) -> None:
    headers = credentials(op, world, admin)
    url = world.url(op)
    for name, param in op.params.items():
        if param["in"] != "query":
            continue
        schema = _variants(param["schema"])
        cases: dict[str, tuple[str, bool]] = {
            "non-UTF-8": ("%FF%FE", False),
            "NUL": ("a%00b", False),
            "empty": ("", False),
        }
        if schema.get("type") == "integer":
            cases |= {
                "abc": ("abc", True),
                "-1": ("-1", True),
                "decimal": ("1.5", True),
                "2**64": (str(2**64), True),
                "10k digits": ("9" * 10_000, True),
            }
            if name == "limit":
                cases |= {"0": ("0", True), "101": ("101", True)}
        elif "enum" in schema:
            cases |= {"bogus": ("bogus", True), "10k chars": (LONG, True)}
        elif schema.get("type") == "string":
            long = "maxLength" in schema
            cases |= {"10k chars": (LONG, long)}
        for label, (value, strict) in cases.items():
            target = f"{url}?{name}={value}"
            await sweep.send(f"{name} {label}", target, headers, strict=strict)
        await sweep.send(f"{name} repeated", f"{url}?{name}=1&{name}=abc", headers, strict=False)
    await sweep.control(url, credentials(op, world, admin))
    sweep.check()


# --- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.id)
async def test_malformed_headers(sweep: Sweep, world: World, admin: dict[str, str], op: Op) -> None:
    good, body, valid = _with_template(op, world, credentials(op, world, admin))
    url = world.url(op)

    def with_header(name: str, value: bytes) -> list[tuple[bytes, bytes]]:
        kept = [(k.lower().encode(), v.encode()) for k, v in good.items() if k.lower() != name]
        return [*kept, (name.encode(), value)]

    long = LONG.encode()
    cases: list[tuple[str, str, bytes, bool]] = [
        ("long bearer", "authorization", b"Bearer " + long, True),
        ("non-UTF-8 bearer", "authorization", b"Bearer \xff\xfe", True),
        ("long request id", "x-request-id", long, False),
        ("long device id", "x-engagespot-device-id", long, False),
        ("content type garbage", "content-type", b"\xff/\xfe; charset=\x00", False),
    ]
    if not op.admin:
        cases += [
            ("long api key", "x-engagespot-api-key", long, True),
            ("long api secret", "x-engagespot-api-secret", long, True),
            ("long user id", "x-engagespot-user-id", long, True),
            ("non-UTF-8 api key", "x-engagespot-api-key", b"\xff\xfe", True),
            ("non-UTF-8 secret", "x-engagespot-api-secret", b"\xff\xfe", True),
            ("NUL api key", "x-engagespot-api-key", b"a\x00b", True),
            ("non-UTF-8 user id", "x-engagespot-user-id", b"\xff\xfe", False),
            ("NUL user id", "x-engagespot-user-id", b"a\x00b", False),
            ("long signature", "x-engagespot-user-signature", long, False),
        ]
    for label, name, value, strict in cases:
        await sweep.send(label, url, with_header(name, value), content=body, strict=strict)
    await sweep.control(url, credentials(op, world, admin), valid)
    sweep.check()


# --- specific cases the generic families only allow ---------------------------------------------


@pytest.mark.parametrize("param", ["category", "tenantIdentifier"])
async def test_nul_in_inbox_filters_is_400(
    client: httpx.AsyncClient, world: World, param: str
) -> None:
    r = await client.get(f"/v3/notifications?{param}=a%00b", headers=world.creds.user("alice"))
    assert r.status_code == 400, r.text
    assert r.json()["status"] == "error"


async def test_nul_in_user_id_header_is_4xx_on_inbox_routes(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    before = await snapshot(connection(session), world.creds.id)
    headers = [
        (b"x-engagespot-api-key", world.creds.api_key.encode()),
        (b"x-engagespot-user-id", b"al\x00ice"),
    ]
    for method, url in (
        ("GET", "/v3/notifications"),
        ("GET", "/v3/profile"),
        ("PUT", "/v3/profile"),
        ("POST", "/v3/sdk/connect"),
        ("GET", "/v3/preferences"),
        ("POST", "/v3/notifications/markAllNotificationsAsRead"),
    ):
        r = await client.request(method, url, headers=headers)
        assert 400 <= r.status_code < 500, (method, url, r.text)
        assert r.json()["status"] == "error"
    assert await snapshot(connection(session), world.creds.id) == before


def test_every_body_route_has_a_valid_template() -> None:
    missing = [
        op.id
        for op in OPS
        if op.body == "required"
        and (op.method, op.path) not in TEMPLATES
        and (op.method, op.path) not in SIGNED_BY_PROVIDER
    ]
    assert not missing, f"add a valid body to TEMPLATES for: {missing}"
    stale = [key for key in TEMPLATES if key not in {(op.method, op.path) for op in OPS}]
    assert not stale, f"TEMPLATES names routes that no longer exist: {stale}"


async def test_json_patch_cannot_amplify_the_profile(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    alice = world.creds.user("alice")
    r = await client.put("/v3/profile", json={"bio": "b" * 40_000}, headers=alice)
    assert r.status_code == 200, r.text
    before = await snapshot(connection(session), world.creds.id)
    # Each copy of the root doubles the document: 2**n growth from a tiny request.
    doubling = [{"op": "copy", "from": "", "path": f"/k{i}"} for i in range(30)]
    many = [{"op": "add", "path": "/n", "value": i} for i in range(101)]
    for operations in (doubling[:2], many, doubling):
        r = await client.patch("/v3/profile", json=operations, headers=alice)
        assert r.status_code == 400, r.text
        assert r.json()["status"] == "error"
    assert await snapshot(connection(session), world.creds.id) == before
    # Ordinary patches, copies included, still work.
    r = await client.patch(
        "/v3/profile",
        json=[
            {"op": "add", "path": "/name", "value": "Alice"},
            {"op": "copy", "from": "/name", "path": "/nickname"},
            {"op": "remove", "path": "/bio"},
        ],
        headers=alice,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "Alice", "nickname": "Alice"}
