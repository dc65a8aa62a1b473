from typing import Annotated

from fastapi import APIRouter, Header, Request, status

from app.auth.dependencies import BackendApp
from app.config import Settings, SettingsDep
from app.db import SessionDep
from app.delivery import crypto
from app.errors import answers
from app.kit.access import SEND_REQUEST_ID
from app.sends import accept, idempotency
from app.sends.group import GroupCommit
from app.sends.schemas import SendAccepted, SendRequest

router = APIRouter(tags=["notifications"])

IdempotencyHeader = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
]


@router.post(
    "/notifications",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SendAccepted,
    # 409: a retry while the first is in flight; 422: the key with another body.
    responses=answers(409, 422),
)
async def send_notification(
    request: Request,
    session: SessionDep,
    principal: BackendApp,
    settings: SettingsDep,
    body: SendRequest,
    idempotency_key: IdempotencyHeader = None,
) -> SendAccepted:
    """Send a notification to recipients and topics (now, or at `sendAt`).

    Inbox rows for up to `HERALD_INLINE_RECIPIENTS` explicit recipients exist when this
    answers 202; larger audiences and topics are written by the worker. With an
    `Idempotency-Key`, a retry within 24 h gets the first answer and sends nothing twice."""
    app_id = principal.app.id
    if idempotency_key is not None:
        earlier = await idempotency.claim(
            session, app_id=app_id, key=idempotency_key, body=body.model_dump(mode="json")
        )
        if earlier is not None:
            setattr(request.state, SEND_REQUEST_ID, str(earlier))
            return SendAccepted(requestId=str(earlier))
    limits = accept.Limits(
        max_recipients=settings.max_recipients, inline_recipients=settings.inline_recipients
    )
    keyring = _keyring(request, settings)
    web_push = settings.vapid_subject is not None
    if idempotency_key is None:
        send = await accept.plain(
            session, app=principal.app, body=body, limits=limits, keyring=keyring, web_push=web_push
        )
        if send is not None:
            # What this request read (its app, on a cache miss; its channels) is done with:
            # its connection goes back to the pool rather than idle while the group is
            # written, which needs one of its own (else a burst of sends exhausts the pool).
            if session.in_transaction():
                await session.commit()
            await _group(request).write(send)
            setattr(request.state, SEND_REQUEST_ID, str(send.request_id))
            return SendAccepted(requestId=str(send.request_id))
    request_id = await accept.accept(
        session,
        app=principal.app,
        body=body,
        limits=limits,
        keyring=keyring,
        web_push=web_push,
    )
    if idempotency_key is not None:
        await idempotency.remember(
            session, app_id=app_id, key=idempotency_key, request_id=request_id
        )
    setattr(request.state, SEND_REQUEST_ID, str(request_id))
    return SendAccepted(requestId=str(request_id))


def _group(request: Request) -> GroupCommit:
    """The app's group commit for plain sends, made on first use."""
    state = request.app.state
    group: GroupCommit | None = getattr(state, "send_group", None)
    if group is None:
        # The session factory is read at each group: tests swap it per test.
        group = state.send_group = GroupCommit(lambda: state.sessionmaker)
    return group


def _keyring(request: Request, settings: Settings) -> crypto.Keyring:
    """crypto.keyring(settings), kept for the settings in use: it resolves the data
    directory's path, a tenth of a plain send's CPU when done for every send."""
    state = request.app.state
    cached: tuple[Settings, crypto.Keyring] | None = getattr(state, "send_keyring", None)
    if cached is None or cached[0] is not settings:
        cached = state.send_keyring = (settings, crypto.keyring(settings))
    return cached[1]
