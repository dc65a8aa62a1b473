"""One dependency per way of calling Herald; routes declare which they accept."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import Headers

from app.apps import repository as apps_repository
from app.apps import sealing
from app.apps.cache import AppCache
from app.apps.credentials import accepts_secret
from app.apps.models import App
from app.auth import admin_token, tokens
from app.auth.principal import Principal, UserPrincipal, Via
from app.db import SessionDep
from app.errors import NO_AUTH, BadRequest, Unauthorized
from app.keyring import Keyring
from app.kit.secrets import same
from app.kit.timefmt import utcnow

# OpenAPI security scheme names: the /docs "Authorize" dialog offers every one.
API_KEY, API_SECRET, USER_ID, SIGNATURE = "apiKey", "apiSecret", "userId", "userSignature"
USER_TOKEN, ADMIN_TOKEN, METRICS_TOKEN = "userToken", "adminToken", "metricsToken"
PROVIDER_SIGNATURE = "providerSignature"

_api_key = APIKeyHeader(name="X-ENGAGESPOT-API-KEY", scheme_name=API_KEY, auto_error=False)
_api_secret = APIKeyHeader(name="X-ENGAGESPOT-API-SECRET", scheme_name=API_SECRET, auto_error=False)
_user_id = APIKeyHeader(name="X-ENGAGESPOT-USER-ID", scheme_name=USER_ID, auto_error=False)
_signature = APIKeyHeader(
    name="X-ENGAGESPOT-USER-SIGNATURE",
    scheme_name=SIGNATURE,
    description="HMAC-SHA256 of the user id, keyed with the API secret (apps with HMAC on)",
    auto_error=False,
)
_user_token = HTTPBearer(
    scheme_name=USER_TOKEN,
    description="RS256 user JWT `{sub: 'user:<id>', apiKey}` (apps in secure mode)",
    auto_error=False,
)
_admin_token = HTTPBearer(
    scheme_name=ADMIN_TOKEN, description="HERALD_ADMIN_TOKEN", auto_error=False
)
_metrics_token = HTTPBearer(
    scheme_name=METRICS_TOKEN, description="HERALD_METRICS_TOKEN, when set", auto_error=False
)
_provider_signature = APIKeyHeader(
    name="X-Twilio-Signature",
    scheme_name=PROVIDER_SIGNATURE,
    description="Twilio's base64 HMAC-SHA1 of the callback URL and its sorted form fields, "
    "keyed with the provider's TWILIO_AUTH_TOKEN (sent by Twilio, not by a client)",
    auto_error=False,
)

MAX_IDENTIFIER = 255
# Sent by @engagespot/core when no signature is configured.
_ABSENT = {"", "undefined", "null"}


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: str | None
    api_secret: str | None
    user_id: str | None
    signature: str | None
    token: str | None


def present(value: str | None) -> str | None:
    if value is None or value.strip() in _ABSENT:
        return None
    return value.strip()


def _bearer(value: str | None) -> str | None:
    if value and value[:7].lower() == "bearer ":
        return present(value[7:])
    return None


def header_text(value: str | None) -> str | None:
    """A header value as the client meant it: UTF-8 when its bytes are UTF-8, else latin-1.

    Starlette decodes headers as latin-1. curl, Go and httpx send `用户` as UTF-8 bytes,
    while Node's http and fetch send `café` as the single latin-1 byte 0xE9 (and refuse
    `用户`): both must name the same user as the identifier in a JSON body."""
    if value is None or value.isascii():
        return value
    raw = value.encode("latin-1")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return value


async def credentials(
    request: Request,
    api_key: Annotated[str | None, Depends(_api_key)],
    api_secret: Annotated[str | None, Depends(_api_secret)],
    user_id: Annotated[str | None, Depends(_user_id)],
    signature: Annotated[str | None, Depends(_signature)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_user_token)],
) -> Credentials:
    return _credentials(
        request.headers,
        api_key,
        api_secret,
        user_id,
        signature,
        bearer.credentials if bearer else None,
    )


def _credentials(
    headers: Headers,
    api_key: str | None,
    api_secret: str | None,
    user_id: str | None,
    signature: str | None,
    bearer: str | None,
) -> Credentials:
    # `x-api-key`/`x-api-secret` appear in Engagespot's own curl examples;
    # `Authentication: Bearer` is the spelling in its API reference.
    return Credentials(
        api_key=present(header_text(api_key or headers.get("x-api-key"))),
        api_secret=present(header_text(api_secret or headers.get("x-api-secret"))),
        user_id=present(header_text(user_id)),
        signature=present(header_text(signature)),
        token=bearer if bearer else _bearer(headers.get("authentication")),
    )


def credentials_of(headers: Headers) -> Credentials:
    """`credentials` read straight from the headers, as its five security schemes read them
    (an empty header is no header; a bearer token only after a `Bearer` scheme)."""
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    token = token.strip()
    return _credentials(
        headers,
        headers.get("x-engagespot-api-key") or None,
        headers.get("x-engagespot-api-secret") or None,
        headers.get("x-engagespot-user-id") or None,
        headers.get("x-engagespot-user-signature") or None,
        token if scheme.lower() == "bearer" and token else None,
    )


async def _app_by_key(
    session: AsyncSession, api_key: str, keyring: Keyring, apps: AppCache | None
) -> App | None:
    if apps is None:
        app = await apps_repository.by_key(session, api_key)
        return sealing.opened(keyring, app) if app is not None else None
    cached = apps.get(api_key)
    if cached is not None:
        return cached
    epoch = apps.epoch()
    app = await apps_repository.by_key(session, api_key)
    if app is not None:
        # Opened once per read of the row: cached, a request costs no decryption.
        sealing.opened(keyring, app)
        # Out of the session, so its rollback or close cannot expire what other requests read.
        session.expunge(app)
        apps.put(api_key, app, epoch)
    return app


async def authenticate(
    session: AsyncSession, creds: Credentials, keyring: Keyring, *, apps: AppCache | None = None
) -> Principal:
    """Resolve credentials to a principal, or raise 401. `keyring` opens the app's secrets."""
    if creds.token is not None:
        return await _from_token(session, creds, keyring, apps)
    if creds.api_key is None:
        raise Unauthorized(NO_AUTH)
    return _by_key(await _app_by_key(session, creds.api_key, keyring, apps), creds)


def _by_key(app: App | None, creds: Credentials) -> Principal:
    """`authenticate` once the API key's app is read (None: no such app)."""
    if app is None:
        raise Unauthorized("Invalid API key")
    if creds.api_secret is not None:
        return _by_secret(app, creds.api_secret, creds)
    if creds.user_id is None:
        raise Unauthorized(NO_AUTH)
    user_id = _identifier(creds.user_id)
    if app.secure_mode:
        raise Unauthorized(
            "This app is in secure mode: authenticate the user with a token "
            "(Authorization: Bearer <JWT>)"
        )
    if app.hmac_enabled:
        if creds.signature is None or not tokens.signature_ok(
            app.api_secret, creds.user_id, creds.signature
        ):
            raise Unauthorized("Invalid or missing X-ENGAGESPOT-USER-SIGNATURE")
        return Principal(app=app, via=Via.HMAC, user_identifier=user_id)
    return Principal(app=app, via=Via.USER_ID, user_identifier=user_id)


def _by_secret(app: App, api_secret: str, creds: Credentials) -> Principal:
    if not accepts_secret(app, api_secret, now=utcnow()):
        raise Unauthorized("Invalid API secret")
    return Principal(app=app, via=Via.SECRET, user_identifier=_identifier(creds.user_id))


async def _from_token(
    session: AsyncSession, creds: Credentials, keyring: Keyring, apps: AppCache | None
) -> Principal:
    assert creds.token is not None
    api_key = tokens.unverified_api_key(creds.token)
    if creds.api_key is not None and not same(creds.api_key, api_key):
        raise Unauthorized("The token's apiKey does not match X-ENGAGESPOT-API-KEY")
    app = await _app_by_key(session, api_key, keyring, apps)
    if app is None:
        raise Unauthorized("Invalid user token: unknown apiKey")
    if not app.signing_public_key:
        raise Unauthorized("Invalid user token: the app has no signing key registered")
    user = tokens.verified_user(creds.token, app.signing_public_key)
    return Principal(app=app, via=Via.JWT, user_identifier=_identifier(user))


def _identifier(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_IDENTIFIER:
        raise Unauthorized(f"User identifier longer than {MAX_IDENTIFIER} characters")
    return value


CredentialsDep = Annotated[Credentials, Depends(credentials)]


# async: FastAPI runs a plain `def` dependency in a worker thread, a hop per request.
async def _app_cache(request: Request) -> AppCache:
    apps: AppCache = request.app.state.app_cache
    return apps


AppCacheDep = Annotated[AppCache, Depends(_app_cache)]


async def any_caller(session: SessionDep, creds: CredentialsDep, apps: AppCacheDep) -> Principal:
    return await authenticate(session, creds, apps.keyring, apps=apps)


async def backend(session: SessionDep, creds: CredentialsDep, apps: AppCacheDep) -> Principal:
    principal = await authenticate(session, creds, apps.keyring, apps=apps)
    return _backend_only(principal)


def _backend_only(principal: Principal) -> Principal:
    if not principal.is_backend:
        raise Unauthorized(
            "This route needs the app's credentials: X-ENGAGESPOT-API-KEY and "
            "X-ENGAGESPOT-API-SECRET"
        )
    return principal


async def sender(request: Request) -> Principal:
    """`backend` for the send route, without its eight dependencies (each costs FastAPI
    work on every request, a fifth of a plain send's CPU): the headers read directly, and a
    session of its own only for the app lookup when the app cache misses."""
    creds = credentials_of(request.headers)
    apps: AppCache = request.app.state.app_cache
    if creds.token is None and creds.api_key and creds.api_secret:
        cached = apps.get(creds.api_key)
        if cached is not None:  # the usual case: no session at all
            return _by_secret(cached, creds.api_secret, creds)
    async with request.app.state.sessionmaker() as session:
        principal = await authenticate(session, creds, apps.keyring, apps=apps)
    return _backend_only(principal)


async def inbox_actor(
    request: Request, session: SessionDep, creds: CredentialsDep, apps: AppCacheDep
) -> Principal:
    """A user, or a backend acting on any notification of its app (as @engagespot/node does)."""
    return _hinted(request, await authenticate(session, creds, apps.keyring, apps=apps))


def _hinted(request: Request, principal: Principal) -> Principal:
    """A backend's principal for the user its `userIdentifier` query parameter names."""
    if principal.is_backend and principal.user_identifier is None:
        hinted = present(request.query_params.get("userIdentifier"))
        if hinted is not None:
            if len(hinted) > MAX_IDENTIFIER:
                raise BadRequest(f"userIdentifier longer than {MAX_IDENTIFIER} characters")
            return Principal(app=principal.app, via=principal.via, user_identifier=hinted)
    return principal


async def push_clicker(
    request: Request, session: SessionDep, creds: CredentialsDep, apps: AppCacheDep
) -> Principal:
    """inbox_actor, and also the web-push service worker's click in secure mode.

    The worker has no user token: it sends the API key, the user id and the signature Herald
    put in the push message (base64 HMAC-SHA256 of the user id, keyed with the API secret).
    A valid signature proves Herald made it, so this route, and only this one, takes it in
    secure mode too. A signature made before a secret rotation works during its grace (also
    for apps with HMAC on: a push may wait in the push service for days)."""
    if (
        creds.token is None
        and creds.api_secret is None
        and creds.api_key is not None
        and creds.user_id is not None
        and creds.signature is not None
    ):
        app = await _app_by_key(session, creds.api_key, apps.keyring, apps)
        if app is not None and (app.secure_mode or app.hmac_enabled):
            if not _signed(app, creds.user_id, creds.signature):
                raise Unauthorized("Invalid X-ENGAGESPOT-USER-SIGNATURE")
            return Principal(app=app, via=Via.HMAC, user_identifier=_identifier(creds.user_id))
    return await inbox_actor(request, session, creds, apps)


def _signed(app: App, user_id: str, signature: str) -> bool:
    # Both comparisons always run: timing tells nothing about which secret matched.
    current = tokens.signature_ok(app.api_secret, user_id, signature)
    previous = tokens.signature_ok(app.previous_api_secret or app.api_secret, user_id, signature)
    in_grace = (
        app.previous_api_secret is not None
        and app.previous_secret_expires_at is not None
        and utcnow() < app.previous_secret_expires_at
    )
    return current | (previous & in_grace)


async def inbox_user(principal: Annotated[Principal, Depends(inbox_actor)]) -> UserPrincipal:
    if principal.user_identifier is None:
        raise BadRequest("userIdentifier is required when authenticating with the API secret")
    return UserPrincipal(
        app=principal.app, via=principal.via, user_identifier=principal.user_identifier
    )


async def inbox_reader(request: Request) -> UserPrincipal:
    """inbox_user for the inbox's reads, as one dependency, with no session when the app
    cache has the app (the usual case), as for `sender`.

    inbox_user is nine dependencies (five of them the security schemes /docs shows), and
    FastAPI's solving of each cost more CPU per inbox page than its statement did. This one
    reads the same headers (credentials_of) and runs the same checks, by calling them:
    ACCEPTS documents it as inbox_user."""
    creds = credentials_of(request.headers)
    apps: AppCache = request.app.state.app_cache
    cached = apps.get(creds.api_key) if creds.token is None and creds.api_key else None
    if cached is not None:
        principal = _by_key(cached, creds)
    else:
        async with request.app.state.sessionmaker() as session:
            principal = await authenticate(session, creds, apps.keyring, apps=apps)
    return await inbox_user(_hinted(request, principal))


async def admin(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_token)],
) -> None:
    expected: str | None = request.app.state.admin_token_sha256
    if bearer is None or not admin_token.matches(bearer.credentials, expected):
        raise Unauthorized("Admin API: Authorization: Bearer <admin token> is required")


async def metrics_reader(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_metrics_token)],
) -> None:
    """Open, unless HERALD_METRICS_TOKEN is set: then that token as a bearer."""
    token = request.app.state.settings.metrics_token
    if token is not None and (
        bearer is None or not same(bearer.credentials, token.get_secret_value())
    ):
        raise Unauthorized(
            "A valid Bearer token (HERALD_METRICS_TOKEN) is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def provider_signature(
    value: Annotated[str | None, Depends(_provider_signature)],
) -> str | None:
    """The provider's signature of a callback; the route checks it against the provider's
    secret, which only the route can look up."""
    return present(value)


AnyCaller = Annotated[Principal, Depends(any_caller)]
BackendApp = Annotated[Principal, Depends(backend)]
Sender = Annotated[Principal, Depends(sender)]
InboxActor = Annotated[Principal, Depends(inbox_actor)]
PushClicker = Annotated[Principal, Depends(push_clicker)]
InboxUser = Annotated[UserPrincipal, Depends(inbox_user)]
InboxReader = Annotated[UserPrincipal, Depends(inbox_reader)]
AdminDep = Depends(admin)
MetricsDep = Depends(metrics_reader)
ProviderSignature = Annotated[str | None, Depends(provider_signature)]


@dataclass(frozen=True, slots=True)
class Accepts:
    """The credentials a dependency accepts, for the OpenAPI document: any one combination
    of `requirements` will do; each combination names the schemes sent together."""

    requirements: tuple[tuple[str, ...], ...]
    sentence: str
    # What a caller without them gets.
    refusal: int = 401


_APP = (API_KEY, API_SECRET)
_USER = (API_KEY, USER_ID)
_USER_HMAC = (API_KEY, USER_ID, SIGNATURE)
_USER_TOKEN = (USER_TOKEN,)
_AS_USER = (
    "the API key with `X-ENGAGESPOT-USER-ID` (and `X-ENGAGESPOT-USER-SIGNATURE` when the app "
    "has HMAC on), or the user's RS256 token as `Authorization: Bearer` (the only way in "
    "secure mode)"
)

# app/console/openapi.py puts these on every route whose dependencies include the key.
ACCEPTS: dict[Callable[..., Any], Accepts] = {
    backend: Accepts(
        (_APP,),
        "**Credentials:** the app's API key and secret "
        "(`X-ENGAGESPOT-API-KEY` and `X-ENGAGESPOT-API-SECRET`).",
    ),
    sender: Accepts(
        (_APP,),
        "**Credentials:** the app's API key and secret "
        "(`X-ENGAGESPOT-API-KEY` and `X-ENGAGESPOT-API-SECRET`).",
    ),
    inbox_user: Accepts(
        (_USER, _USER_HMAC, _USER_TOKEN, (*_APP, USER_ID)),
        f"**Credentials:** {_AS_USER}; or the app's API key and secret, naming the user with "
        "`X-ENGAGESPOT-USER-ID` or `?userIdentifier=`.",
    ),
    inbox_reader: Accepts(
        (_USER, _USER_HMAC, _USER_TOKEN, (*_APP, USER_ID)),
        f"**Credentials:** {_AS_USER}; or the app's API key and secret, naming the user with "
        "`X-ENGAGESPOT-USER-ID` or `?userIdentifier=`.",
    ),
    inbox_actor: Accepts(
        (_USER, _USER_HMAC, _USER_TOKEN, _APP),
        f"**Credentials:** {_AS_USER}; or the app's API key and secret, to act on any "
        "notification of the app.",
    ),
    push_clicker: Accepts(
        (_USER, _USER_HMAC, _USER_TOKEN, _APP),
        f"**Credentials:** {_AS_USER}; or the app's API key and secret. The web-push service "
        "worker's key, user id and `X-ENGAGESPOT-USER-SIGNATURE` (from the push message) are "
        "accepted here even in secure mode.",
    ),
    any_caller: Accepts(
        (_APP, _USER, _USER_HMAC, _USER_TOKEN),
        f"**Credentials:** the app's API key and secret; or {_AS_USER}.",
    ),
    admin: Accepts(
        ((ADMIN_TOKEN,),),
        "**Credentials:** the admin token, as `Authorization: Bearer <HERALD_ADMIN_TOKEN>`.",
    ),
    metrics_reader: Accepts(
        ((), (METRICS_TOKEN,)),
        "**Credentials:** none, unless `HERALD_METRICS_TOKEN` is set: then "
        "`Authorization: Bearer <HERALD_METRICS_TOKEN>`.",
    ),
    provider_signature: Accepts(
        ((PROVIDER_SIGNATURE,),),
        "**Credentials:** none of the app's: the provider's signature of the request "
        "(`X-Twilio-Signature`, made with the provider's auth token) is the credential; "
        "unsigned or wrongly signed requests get 403 and change nothing.",
        refusal=403,
    ),
}
