"""POST /v3/providers/{id}/callback: delivery reports from providers (the role of
Engagespot's /v1/providerInstances/{instanceId}/callback). No app credentials: the provider's
signature is the credential (app/delivery/callbacks.py)."""

import logging

from fastapi import APIRouter, Request, Response, status

from app.auth.dependencies import ProviderSignature
from app.config import SettingsDep
from app.db import SessionDep
from app.delivery import callbacks, crypto
from app.errors import answers
from app.kit.types import DbId

log = logging.getLogger("herald.delivery")
router = APIRouter(tags=["providers"])

_FIELD = {"type": "string"}
_FORM = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "description": "Twilio's status callback (or inbound message) fields",
                "properties": {
                    "MessageSid": _FIELD,
                    "MessageStatus": {
                        "type": "string",
                        "examples": ["sent", "delivered", "undelivered", "failed", "read"],
                    },
                    "ErrorCode": _FIELD,
                    "AccountSid": _FIELD,
                    "From": _FIELD,
                    "To": _FIELD,
                    "Body": _FIELD,
                    "OptOutType": _FIELD,
                },
                "additionalProperties": {"type": "string"},
            }
        }
    },
}


@router.post(
    "/providers/{provider_id}/callback",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=answers(403),
    openapi_extra={"requestBody": _FORM},
)
async def provider_callback(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    signature: ProviderSignature,
    provider_id: DbId,
) -> Response:
    """Take a provider's delivery report (a Twilio status callback, signed with
    X-Twilio-Signature): the delivery it names moves to delivered, undelivered or read."""
    url = callbacks.checked_url(
        settings, path=request.url.path, query=request.url.query, received=str(request.url)
    )
    done = await callbacks.receive(
        session,
        crypto.keyring(settings),
        provider_id=provider_id,
        url=url,
        body=await request.body(),
        signature=signature,
    )
    log.info("provider %s callback: %s", provider_id, done)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
