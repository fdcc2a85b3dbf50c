"""The dashboard's sign-in and sign-out: a token on a form in, a session cookie out."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from qwex_remote.server import pages
from qwex_remote.server.deps import MaybeVisit, PageVisit, State
from qwex_remote.server.errors import ApiError
from qwex_remote.server.services import sessions

router = APIRouter(include_in_schema=False, tags=["dashboard"])


@router.get("/signin")
def sign_in_page(visit: MaybeVisit, next: str | None = None) -> Response:
    """The sign-in form (a browser signed in already goes on)."""
    if visit is not None:
        return pages.redirect(pages.safe_next(next))
    return pages.render("signin.html", then=pages.safe_next(next))


@router.post("/signin")
async def sign_in(request: Request, state: State) -> Response:
    fields = await pages.form(request)
    if fields is None:
        return pages.render("signin.html", 403, then="/", error="this form came from another site")
    token, then = fields.get("token", "").strip(), pages.safe_next(fields.get("next"))
    if not token:
        return pages.render("signin.html", 422, then=then, error="enter your token")
    try:
        cookie = await run_in_threadpool(sessions.sign_in, state, token)
    except ApiError as exc:
        return pages.render("signin.html", exc.status, then=then, error=exc.message)
    answer = pages.redirect(then)
    answer.set_cookie(
        sessions.COOKIE,
        cookie,
        max_age=int(sessions.LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer


@router.post("/signout")
async def sign_out(request: Request, visit: PageVisit, state: State) -> Response:
    fields = await pages.form(request)
    try:
        sessions.check_csrf(visit, (fields or {}).get("csrf"))
    except ApiError as exc:
        return pages.render("error.html", exc.status, visit=visit, message=exc.message)
    cookie = request.cookies.get(sessions.COOKIE, "")
    await run_in_threadpool(sessions.sign_out, state, cookie)
    answer = pages.redirect("/signin")
    answer.delete_cookie(sessions.COOKIE, path="/", httponly=True, samesite="strict")
    return answer
