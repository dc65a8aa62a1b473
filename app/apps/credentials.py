"""Which API secrets an app accepts: the current one, and the previous one during its grace."""

from datetime import datetime

from app.apps.models import App
from app.kit.secrets import same


def accepts_secret(app: App, given: str, *, now: datetime) -> bool:
    # Both comparisons always run, so timing tells nothing about which secret matched.
    current = same(app.api_secret, given)
    previous = same(app.previous_api_secret or app.api_secret, given)
    in_grace = (
        app.previous_api_secret is not None
        and app.previous_secret_expires_at is not None
        and now < app.previous_secret_expires_at
    )
    return current | (previous & in_grace)
