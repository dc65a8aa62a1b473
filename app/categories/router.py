from fastapi import APIRouter

from app.auth.dependencies import AnyCaller, BackendApp
from app.categories import repository, service
from app.categories.schemas import CategoryCreate, CategoryRead, CategoryUpdate
from app.db import SessionDep
from app.errors import answers
from app.users.schemas import Message

router = APIRouter(tags=["categories"])


@router.get("/categories", response_model=list[CategoryRead])
async def list_categories(session: SessionDep, principal: AnyCaller) -> list[CategoryRead]:
    """List the app's notification categories."""
    return [CategoryRead.of(c) for c in await repository.list_for_app(session, principal.app.id)]


@router.post("/categories", response_model=CategoryRead, responses=answers(409))
@router.post("/notifications/categories", response_model=CategoryRead, include_in_schema=False)
async def create_category(
    session: SessionDep, principal: BackendApp, body: CategoryCreate
) -> CategoryRead:
    """Create a category (409 if the identifier is taken)."""
    return CategoryRead.of(await service.create(session, app_id=principal.app.id, body=body))


@router.patch("/categories/{category_id}", response_model=CategoryRead)
async def update_category(
    session: SessionDep, principal: BackendApp, category_id: int, body: CategoryUpdate
) -> CategoryRead:
    """Rename a category or change where it is hidden."""
    category = await service.update(
        session, app_id=principal.app.id, category_id=category_id, body=body
    )
    return CategoryRead.of(category)


@router.delete("/categories/{category_id}", response_model=Message)
@router.delete(
    "/notifications/categories/{category_id}", response_model=Message, include_in_schema=False
)
async def delete_category(session: SessionDep, principal: BackendApp, category_id: int) -> Message:
    """Delete a category; its notifications stay, uncategorised."""
    await service.delete(session, app_id=principal.app.id, category_id=category_id)
    return Message(message="Category deleted")
