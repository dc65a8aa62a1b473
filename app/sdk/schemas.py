from pydantic import BaseModel

from app.categories.schemas import CategoryRead


class ConnectedApp(BaseModel):
    id: int
    name: str
    publicKey: str
    enableWebPush: bool
    hideBranding: bool
    channels: list[str]
    categories: list[CategoryRead]


class Connected(BaseModel):
    unreadCount: int
    app: ConnectedApp
