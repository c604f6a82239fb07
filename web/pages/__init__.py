"""Server-rendered pages. They work without JavaScript: every action is a form that posts,
then redirects back with a message (or re-renders with the errors next to the fields and
everything typed kept)."""

from fastapi import APIRouter

from web.pages import channel, disputes, exceptions, records, signin

router = APIRouter(include_in_schema=False)
for module in (signin, disputes, records, channel, exceptions):
    router.include_router(module.router)
