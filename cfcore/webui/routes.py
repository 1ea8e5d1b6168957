"""The web UI's pages. Every action calls the service function the REST API calls."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from hookspecs.types import RequestContext

from ..access import approvals, links, users
from ..errors import AccessDenied, ApprovalRequired, AuthenticationFailed, CallFortError, InputError
from ..states import ApprovalState
from ..web.deps import SESSION_COOKIE, client_host, client_ip, get_app, is_https
from .i18n import LANGUAGES, Formats, negotiate, time_zone, translations

if TYPE_CHECKING:
    from ..app import App

router = APIRouter(include_in_schema=False)

TEMPLATE_DIR = Path(__file__).parent / "templates"

LOGIN_CSRF_COOKIE = "cf_login_csrf"
STAFF = ("supervisor", "qa_reviewer", "compliance", "dpo", "auditor")
SEARCH_FIELDS = ("advisor_id", "customer_id", "customer_number", "since", "until", "site", "source", "mode")
CALL_ACTIONS = {"record-both": "record_both", "pause": "pause", "resume": "resume"}
#: Notices after a redirect, by code (never personal data in the URL).
NOTICES = ("hold_set", "requested", "approved", "rejected", "language", "role_requested", "case_updated")


class LoginRequired(AuthenticationFailed):
    """No valid UI session (never logged in, expired, idle, revoked)."""


# --------------------------------------------------------------------------- templates

_ENVS: dict[str, jinja2.Environment] = {}


def env_for(lang: str) -> jinja2.Environment:
    env = _ENVS.get(lang)
    if env is None:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True,
                                 extensions=["jinja2.ext.i18n"], undefined=jinja2.StrictUndefined)
        env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
        _ENVS[lang] = env
    return env


def default_language(app: App) -> str:
    lang = app.config.get("webui.default_language", str, "de")
    return lang if lang in LANGUAGES else "de"


def _request_lang(request: Request) -> str:
    lang = getattr(request.state, "cf_lang", None)
    if lang:
        return str(lang)
    return negotiate(request.headers.get("accept-language"), default_language(get_app(request)))


def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    app = get_app(request)
    lang = _request_lang(request)
    ctx: RequestContext | None = getattr(request.state, "cf_ctx", None)
    token = getattr(request.state, "cf_token", None)
    values.setdefault("notice", request.query_params.get("done") if request.query_params.get("done") in NOTICES
                      else None)
    html = env_for(lang).get_template(template).render(
        lang=lang, languages=LANGUAGES, fmt=Formats(lang, time_zone(app)), me=ctx.actor if ctx else None,
        roles=set(ctx.actor.roles) if ctx else set(),
        any_role=lambda *names: bool(ctx and set(names) & set(ctx.actor.roles)), csrf=csrf_token(token) if token else "",
        idle_minutes=idle_minutes(app), path=request.url.path, **values)
    return HTMLResponse(html, status_code=status)


def render_error(request: Request, status: int, message: str, *, login: bool = False) -> Response:
    if login and request.method == "GET" and "text/event-stream" not in request.headers.get("accept", ""):
        return RedirectResponse("/", status_code=303)
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    return render(request, "error.html", status=status, status_code=status, message=message)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


# --------------------------------------------------------------------------- session, CSRF, idle


def idle_minutes(app: App) -> int:
    return app.config.get("webui.idle_minutes", int, 15)


def csrf_token(session_token: str) -> str:
    """Bound to the session: an HMAC keyed with the session token (unforgeable without it)."""
    return hmac.new(session_token.encode(), b"callfort web ui csrf", hashlib.sha256).hexdigest()


def check_csrf(request: Request, value: str | None) -> None:
    token = request.state.cf_token
    if not value or not hmac.compare_digest(value, csrf_token(token)):
        get_app(request).audit.record(request.state.cf_ctx, "webui.csrf", "session", None, "denied",
                                      {"path": request.url.path})
        raise AccessDenied("the form has expired or did not come from this site", hint="reload the page and try again")


def _authenticate(request: Request, function: str, *, touch: bool = True) -> RequestContext:
    app = get_app(request)
    token = request.cookies.get(SESSION_COOKIE)
    if not token or not token.startswith(users.SESSION_PREFIX):
        raise LoginRequired("not logged in")
    host, ip = client_host(request), client_ip(request)
    try:
        actor = users.authenticate_token(app, token, host=host, ip=ip, function=function, touch=touch,
                                         idle_minutes=idle_minutes(app))
    except AuthenticationFailed as exc:
        raise LoginRequired(str(exc)) from None
    ctx = RequestContext(actor=actor, host=host, ip=ip, function=function)
    request.state.cf_ctx, request.state.cf_token = ctx, token
    request.state.cf_lang = users.get_language(app, actor.user_id) or negotiate(
        request.headers.get("accept-language"), default_language(app))
    return ctx


def ui(function: str, *, touch: bool = True) -> Callable[..., RequestContext]:
    """Dependency: the logged-in UI user (session cookie only), ``function`` in the audit trail."""

    def dependency(request: Request) -> RequestContext:
        return _authenticate(request, function, touch=touch)

    dependency.__name__ = f"ui_{function.replace('.', '_')}"
    return dependency


def _back(path: str, notice: str | None = None) -> RedirectResponse:
    return RedirectResponse(path + (f"?done={notice}" if notice else ""), status_code=303)


# --------------------------------------------------------------------------- log-in, log-out, language


@router.get("/", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    try:
        _authenticate(request, "ui.home", touch=False)
        return RedirectResponse("/ui/", status_code=303)
    except LoginRequired:
        pass
    return _login_form(request)


def _login_form(request: Request, error: str | None = None, status: int = 200, username: str = "") -> Response:
    nonce = secrets.token_urlsafe(24)
    response = render(request, "login.html", status=status, error=error, login_csrf=nonce, username=username)
    response.set_cookie(LOGIN_CSRF_COOKIE, nonce, httponly=True, samesite="strict", path="/",
                        secure=is_https(request))
    return response


@router.post("/login")
async def login(request: Request, username: str = Form(max_length=64), password: str = Form(max_length=1024),
                csrf: str = Form(max_length=100)) -> Response:
    from ..errors import TooManyRequests
    from ..web.routes_auth import _throttled

    app = get_app(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, csrf):
        return _login_form(request, "expired", 400, username)
    host, ip = client_host(request), client_ip(request)
    try:
        name: str | None = users.normalise_username(username)
    except InputError:
        name = None
    from ..access.throttle import throttle_for

    def run() -> tuple[RequestContext, users.IssuedToken]:
        actor = users.authenticate_password(app, username, password, host=host, ip=ip, function="ui.login",
                                            audit_success=True)
        ctx = RequestContext(actor=actor, host=host, ip=ip, function="ui.login")
        return ctx, users.start_session(app, ctx)

    try:
        throttle_for(app).check(ip, name)
        _ctx, issued = await _throttled(app, run)
    except TooManyRequests as exc:
        response = _login_form(request, "throttled", 429, username)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except AuthenticationFailed:
        return _login_form(request, "failed", 401, username)
    max_age = int((issued.expires_at - app.clock.now()).total_seconds()) if issued.expires_at else None
    response = RedirectResponse("/ui/", status_code=303)
    response.set_cookie(SESSION_COOKIE, issued.token, max_age=max_age, httponly=True, samesite="strict",
                        secure=is_https(request), path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/ui/logout")
def logout(request: Request, csrf: str = Form(max_length=100),
           ctx: RequestContext = Depends(ui("ui.logout"))) -> Response:
    check_csrf(request, csrf)
    users.end_session(get_app(request), ctx, request.state.cf_token)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/ui/language")
def language(request: Request, lang: str = Form(max_length=8), csrf: str = Form(max_length=100),
             back: str = Form(default="/ui/", max_length=200),
             ctx: RequestContext = Depends(ui("ui.language"))) -> Response:
    check_csrf(request, csrf)
    users.set_language(get_app(request), ctx, lang)
    target = back if back.startswith("/ui/") and "//" not in back and "\\" not in back else "/ui/"
    return _back(target.split("?")[0], "language")


@router.get("/ui/")
@router.get("/ui")
def home(request: Request, ctx: RequestContext = Depends(ui("ui.home"))) -> Response:
    roles = set(ctx.actor.roles)
    if "advisor" in roles:
        return RedirectResponse("/ui/calls", status_code=303)
    if "dpo" in roles:
        return RedirectResponse("/ui/dpo", status_code=303)
    if roles & set(STAFF):
        return RedirectResponse("/ui/search", status_code=303)
    if "administrator" in roles:
        return RedirectResponse("/ui/admin", status_code=303)
    return render(request, "home.html")


# --------------------------------------------------------------------------- advisor: calls


@router.get("/ui/calls", response_class=HTMLResponse)
def calls(request: Request, ctx: RequestContext = Depends(ui("ui.calls"))) -> Response:
    from ..capture import controller
    from ..web.routes_recordings import find_recordings

    app = get_app(request)
    live = controller.list_calls(app, ctx, active_only=True, limit=20)
    recent = find_recordings(app, ctx, advisor_id=None, since=None, until=None, customer_ids=[], numbers=[],
                             limit=50, offset=0)["recordings"]
    return render(request, "calls.html", live=[c.as_dict() for c in live], recordings=recent)


@router.get("/ui/calls/events")
async def call_events(request: Request, ctx: RequestContext = Depends(ui("ui.calls.watch", touch=False))) -> Response:
    """Server-sent events: the caller's active calls, pushed when they change. The scope is decided
    and audited once; the feed ends after a while (the browser reconnects, through the log-in check)."""
    from ..capture import controller

    app = get_app(request)
    own = await asyncio.to_thread(controller.watch_scope, app, ctx)
    fmt = Formats(request.state.cf_lang, time_zone(app))

    async def feed() -> AsyncIterator[bytes]:
        last = None
        yield b"retry: 2000\n\n"
        for _ in range(600):  # about 5 minutes
            if await request.is_disconnected():
                return
            rows = await asyncio.to_thread(controller.calls_in_scope, app, own)
            data = json.dumps([{"call_id": c.call_id, "state": c.state, "mode": c.mode, "direction": c.direction,
                                "customer": c.customer, "source": c.source,
                                "started": fmt.when(c.answered_at or c.started_at, "short")} for c in rows])
            if data != last:
                last = data
                yield f"event: calls\ndata: {data}\n\n".encode()
            await asyncio.sleep(0.5)

    return StreamingResponse(feed(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.post("/ui/calls/{call_id}/{action}")
def call_control(call_id: str, action: str, request: Request, csrf: str = Form(max_length=100),
                 informed: str | None = Form(default=None, max_length=8),
                 ctx: RequestContext = Depends(ui("ui.calls.control"))) -> Response:
    from ..capture import controller

    check_csrf(request, csrf)
    act = CALL_ACTIONS.get(action)
    if act is None:
        raise InputError(f"unknown call action {action!r}")
    if act == "record_both" and informed != "yes":
        raise InputError("confirm first that you informed the customer",
                         hint="tick 'I have informed the customer' and try again")
    req = controller.trigger(get_app(request), ctx, call_id, act, method="web", timeout=15.0)
    if _wants_json(request):
        return JSONResponse(req.as_dict())
    return _back("/ui/calls")


# --------------------------------------------------------------------------- recordings


def _recording(request: Request, ctx: RequestContext, rec_id: str) -> dict[str, Any]:
    from ..web.routes_recordings import show_recording

    return show_recording(rec_id, request, ctx)


def _own_requests(app: App, ctx: RequestContext, rec_id: str) -> list[dict[str, Any]]:
    return [a.as_dict() for a in approvals.list_requests(app, ctx, None, 200)
            if a.target_id == rec_id and a.requester == ctx.actor.username]


def _player(app: App, ctx: RequestContext, rec_id: str, link: dict[str, Any]) -> dict[str, Any]:
    from .waveform import peaks

    token = link["token"]
    wave = peaks(app, ctx, rec_id, token)
    return {"url": link["url"], "expires_at": link["expires_at"], "wave": json.dumps(wave),
            "channels": [c["name"] for c in wave["channels"]], "duration": wave["duration"]}


def _turns(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive words of one voice as one turn (each word keeps its times, for seeking)."""
    turns: list[dict[str, Any]] = []
    for w in segments:
        if not turns or turns[-1]["role"] != w.get("role"):
            turns.append({"role": w.get("role"), "start": float(w["start"]), "words": []})
        turns[-1]["words"].append({"start": float(w["start"]), "end": float(w["end"]), "text": str(w["text"])})
    return turns


def _transcript(request: Request, ctx: RequestContext, rec_id: str,
                link: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The transcript beside the player, read exactly as the API reads it: a ``transcript`` link
    (``transcripts.create_link``: ``transcript.read`` decides, own call or four-eyes) opened by the
    API's own view (``GET /api/transcripts/<id>``: link + this user's session, audited
    ``transcript.read``). None when the recording has no transcript; ``refused`` when not allowed."""
    from .. import transcripts
    from ..web.routes_transcripts import read_transcript

    app = get_app(request)
    if link is None:
        if not transcripts.has_transcript(app, rec_id):
            return None
        try:
            link = transcripts.create_link(app, ctx, rec_id)
        except (AccessDenied, ApprovalRequired):  # audited by the access decision
            return {"refused": True, "turns": []}
    doc = read_transcript(rec_id, request, t=link["token"])
    if isinstance(doc, Response):  # the view refused the link (audited there)
        return {"refused": True, "turns": []}
    return {"refused": False, "language": doc.get("language"), "turns": _turns(doc["segments"])}


def _recording_page(request: Request, ctx: RequestContext, rec_id: str, *, player: dict[str, Any] | None = None,
                    error: str | None = None, status: int = 200,
                    transcript: dict[str, Any] | None = None) -> Response:
    app = get_app(request)
    rec = _recording(request, ctx, rec_id)
    return render(request, "recording.html", status=status, rec=rec, player=player, error=error,
                  transcript=transcript, requests=_own_requests(app, ctx, rec_id))


@router.get("/ui/recordings/{rec_id}", response_class=HTMLResponse)
def recording(rec_id: str, request: Request, ctx: RequestContext = Depends(ui("ui.recording"))) -> Response:
    return _recording_page(request, ctx, rec_id)


@router.post("/ui/recordings/{rec_id}/play", response_class=HTMLResponse)
def play(rec_id: str, request: Request, csrf: str = Form(max_length=100),
         ctx: RequestContext = Depends(ui("ui.recording.play"))) -> Response:
    check_csrf(request, csrf)
    app = get_app(request)
    try:
        link = links.create_link(app, ctx, rec_id)
    except (AccessDenied, ApprovalRequired) as exc:
        return _recording_page(request, ctx, rec_id, error=str(exc), status=403)
    return _recording_page(request, ctx, rec_id, player=_player(app, ctx, rec_id, link),
                           transcript=_transcript(request, ctx, rec_id))


@router.post("/ui/recordings/{rec_id}/request")
def request_access(rec_id: str, request: Request, csrf: str = Form(max_length=100),
                   action: str = Form(max_length=32), reason: str = Form(max_length=2000),
                   ctx: RequestContext = Depends(ui("ui.approvals.request"))) -> Response:
    check_csrf(request, csrf)
    if action not in ("recording.play", "recording.export", "transcript.read"):
        raise InputError(f"{action!r} cannot be requested here")
    approvals.request(get_app(request), ctx, action, rec_id, reason, {})
    return _back(f"/ui/recordings/{rec_id}", "requested")


@router.post("/ui/recordings/{rec_id}/hold")
def hold(rec_id: str, request: Request, csrf: str = Form(max_length=100), reason: str = Form(max_length=2000),
         release: str | None = Form(default=None, max_length=8),
         ctx: RequestContext = Depends(ui("ui.holds"))) -> Response:
    from ..retention import set_hold

    check_csrf(request, csrf)
    app = get_app(request)
    if release == "yes":
        approvals.request(app, ctx, "hold.release", rec_id, reason, {"reason": reason})
        return _back(f"/ui/recordings/{rec_id}", "requested")
    set_hold(app, ctx, rec_id, reason)
    return _back(f"/ui/recordings/{rec_id}", "hold_set")


@router.post("/ui/recordings/{rec_id}/retention")
def retention_change(rec_id: str, request: Request, csrf: str = Form(max_length=100),
                     kind: str = Form(max_length=16), reason: str = Form(max_length=2000),
                     until: str | None = Form(default=None, max_length=40),
                     ctx: RequestContext = Depends(ui("ui.retention"))) -> Response:
    from ..retention import request_change, request_erasure

    check_csrf(request, csrf)
    app = get_app(request)
    if kind == "erase":
        request_erasure(app, ctx, rec_id, reason)
    elif kind in ("extend", "shorten"):
        request_change(app, ctx, rec_id, kind, reason, until=until or None)
    else:
        raise InputError(f"unknown retention change {kind!r}")
    return _back(f"/ui/recordings/{rec_id}", "requested")


# --------------------------------------------------------------------------- search


@router.get("/ui/search", response_class=HTMLResponse)
def search_page(request: Request, ctx: RequestContext = Depends(ui("ui.search"))) -> Response:
    return render(request, "search.html", results=None, form=dict.fromkeys(SEARCH_FIELDS, ""))


@router.post("/ui/search", response_class=HTMLResponse)
def search(request: Request, csrf: str = Form(max_length=100),
           advisor_id: str = Form(default="", max_length=64), customer_id: str = Form(default="", max_length=128),
           customer_number: str = Form(default="", max_length=64), since: str = Form(default="", max_length=40),
           until: str = Form(default="", max_length=40), site: str = Form(default="", max_length=64),
           source: str = Form(default="", max_length=64), mode: str = Form(default="", max_length=16),
           ctx: RequestContext = Depends(ui("ui.search"))) -> Response:
    from ..web.routes_recordings import find_recordings

    check_csrf(request, csrf)
    form = {"advisor_id": advisor_id, "customer_id": customer_id, "customer_number": customer_number,
            "since": since, "until": until, "site": site, "source": source, "mode": mode}
    result = find_recordings(get_app(request), ctx, advisor_id=advisor_id or None, since=since or None,
                             until=until or None, customer_ids=[customer_id] if customer_id else [],
                             numbers=[customer_number] if customer_number else [], site=site or None,
                             source=source or None, mode=mode or None, limit=200, offset=0)
    return render(request, "search.html", results=result["recordings"], form=form)


# --------------------------------------------------------------------------- four-eyes


@router.get("/ui/approvals", response_class=HTMLResponse)
def approvals_page(request: Request, ctx: RequestContext = Depends(ui("ui.approvals"))) -> Response:
    app = get_app(request)
    rows = [a.as_dict() for a in approvals.list_requests(app, ctx, None, 200)]
    mine = [a for a in rows if a["requester"] == ctx.actor.username]
    inbox = [a for a in rows if a["requester"] != ctx.actor.username and a["state"] == ApprovalState.REQUESTED]
    return render(request, "approvals.html", mine=mine, inbox=inbox)


@router.post("/ui/approvals/{approval_id}/{step}", response_class=HTMLResponse)
def approval_step(approval_id: str, step: str, request: Request, csrf: str = Form(max_length=100),
                  note: str | None = Form(default=None, max_length=2000),
                  ctx: RequestContext = Depends(ui("ui.approvals.step"))) -> Response:
    from ..access.links import API_EXECUTORS

    check_csrf(request, csrf)
    app = get_app(request)
    if step == "approve":
        approvals.approve(app, ctx, approval_id)
        return _back("/ui/approvals", "approved")
    if step == "reject":
        approvals.reject(app, ctx, approval_id, note or None)
        return _back("/ui/approvals", "rejected")
    if step != "execute":
        raise InputError(f"unknown step {step!r}")
    view = approvals.get_request(app, ctx, approval_id)
    if view.action not in API_EXECUTORS and "out" in view.params:
        raise InputError(f"request {approval_id} writes a file: run it on your PC", hint=f"cf execute {approval_id}")
    result = approvals.execute(app, ctx, approval_id, executor=API_EXECUTORS.get(view.action))
    if view.action == "recording.play" and view.target_id:
        return _recording_page(request, ctx, view.target_id, player=_player(app, ctx, view.target_id, result),
                               transcript=_transcript(request, ctx, view.target_id))
    if view.action == "transcript.read" and view.target_id:
        return _recording_page(request, ctx, view.target_id,
                               transcript=_transcript(request, ctx, view.target_id, link=result))
    if view.action == "recording.export" and view.target_id:
        return render(request, "executed.html", action=view.action, export_url=result["url"],
                      expires_at=result["expires_at"], result=None)
    return render(request, "executed.html", action=view.action, export_url=None, expires_at=None,
                  result=json.dumps(result, indent=2, default=str, ensure_ascii=False))


# --------------------------------------------------------------------------- DPO


def _checkpoint(app: App) -> dict[str, Any] | None:
    """The newest signed checkpoint in the catalog and the newest anchor outside it."""
    from sqlalchemy import select

    from ..db.models import AuditCheckpoint

    with app.catalog.session() as s:
        cp = s.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1)).first()
        out: dict[str, Any] = {"seq": cp.seq, "at": cp.at.isoformat(), "key_id": cp.key_id} if cp else {}
    newest = getattr(app.audit, "newest_anchor", None)
    if newest is not None:
        anchor, problem = newest()
        out["anchor_seq"] = anchor.get("seq") if anchor else None
        out["anchor_at"] = anchor.get("at") if anchor else None
        out["anchor_problem"] = problem
    return out


@router.get("/ui/dpo", response_class=HTMLResponse)
def dpo(request: Request, ctx: RequestContext = Depends(ui("ui.dpo"))) -> Response:
    from ..fis import breach
    from ..fis.alerts import alert_dict, authorize_read, list_alerts

    app = get_app(request)
    authorize_read(app, ctx, "alerts")
    alerts = [alert_dict(r, deliveries=False) for r in list_alerts(app, limit=100)]
    try:
        cases = breach.list_cases(app, ctx)
    except AccessDenied:
        cases = None
    return render(request, "dpo.html", alerts=alerts, cases=cases, checkpoint=_checkpoint(app), verify=None)


@router.post("/ui/dpo/verify", response_class=HTMLResponse)
def dpo_verify(request: Request, csrf: str = Form(max_length=100),
               ctx: RequestContext = Depends(ui("ui.audit.verify"))) -> Response:
    from ..access import auditlog
    from ..fis import breach
    from ..fis.alerts import alert_dict, authorize_read, list_alerts

    check_csrf(request, csrf)
    app = get_app(request)
    result = auditlog.verify(app, ctx)
    authorize_read(app, ctx, "alerts")
    alerts = [alert_dict(r, deliveries=False) for r in list_alerts(app, limit=100)]
    try:
        cases = breach.list_cases(app, ctx)
    except AccessDenied:
        cases = None
    return render(request, "dpo.html", alerts=alerts, cases=cases, checkpoint=_checkpoint(app), verify=result)


@router.get("/ui/dpo/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(alert_id: str, request: Request, ctx: RequestContext = Depends(ui("ui.fis.alert"))) -> Response:
    from ..fis.alerts import alert_dict, authorize_read, get_alert

    app = get_app(request)
    authorize_read(app, ctx, f"alert {alert_id}")
    with app.catalog.session() as s:
        alert = alert_dict(get_alert(s, alert_id))
    return render(request, "alert.html", alert=alert)


@router.post("/ui/dpo/breach")
def open_case(request: Request, csrf: str = Form(max_length=100), alert: str = Form(max_length=64),
              ctx: RequestContext = Depends(ui("ui.breach.open"))) -> Response:
    from ..fis import breach

    check_csrf(request, csrf)
    case_id = breach.open_case(get_app(request), ctx, [alert], None)
    return _back(f"/ui/dpo/breach/{case_id}")


@router.get("/ui/dpo/breach/{case_id}", response_class=HTMLResponse)
def case_page(case_id: str, request: Request, ctx: RequestContext = Depends(ui("ui.breach.show"))) -> Response:
    from ..fis import breach

    app = get_app(request)
    case = breach.show_case(app, ctx, case_id)
    lang = request.state.cf_lang
    draft = breach.render_case(app, ctx, case_id, lang, "md")
    fields = [{"key": f.key, "label": f.de if lang == "de" else f.en, "article": f.article, "kind": f.kind,
               "required": f.required, "value": case["fields"].get(f.key)} for f in breach.FIELDS]
    labels = {f["key"]: f["label"] for f in fields}
    return render(request, "case.html", case=case, draft=draft, fields=fields,
                  missing=[labels.get(k, k) for k in case["missing"]])


@router.post("/ui/dpo/breach/{case_id}")
async def case_update(case_id: str, request: Request, ctx: RequestContext = Depends(ui("ui.breach.update"))) -> Response:
    from ..fis import breach

    form = await request.form()
    csrf = form.get("csrf")
    check_csrf(request, csrf if isinstance(csrf, str) else None)
    changes: dict[str, Any] = {}
    for f in breach.FIELDS:
        value = form.get(f"f_{f.key}")
        if isinstance(value, str) and value.strip():
            changes[f.key] = value.strip()[:4000]
    status = form.get("status")
    notified = form.get("notified_at")
    await asyncio.to_thread(breach.update_case, get_app(request), ctx, case_id, changes,
                            status=status if status in breach.STATUSES else None,
                            notified_at=notified if isinstance(notified, str) and notified else None)
    return _back(f"/ui/dpo/breach/{case_id}", "case_updated")


@router.get("/ui/dpo/art15", response_class=HTMLResponse)
def art15_page(request: Request, ctx: RequestContext = Depends(ui("ui.dsar"))) -> Response:
    return render(request, "art15.html")


@router.post("/ui/dpo/art15")
def art15(request: Request, csrf: str = Form(max_length=100), customer_id: str = Form(default="", max_length=128),
          number: str = Form(default="", max_length=64), lang: str = Form(default="de", max_length=2),
          format: str = Form(default="html", max_length=4),
          ctx: RequestContext = Depends(ui("ui.dsar.report"))) -> Response:
    from ..dsar import produce_report

    check_csrf(request, csrf)
    if format not in ("html", "pdf"):
        raise InputError("format must be html or pdf")
    if not customer_id.strip() and not number.strip():
        raise InputError("give a customer id or a phone number")
    data, _ = produce_report(get_app(request), ctx, customer_ids=[customer_id.strip()] if customer_id.strip() else [],
                             numbers=[number.strip()] if number.strip() else [], fmt=format, lang=lang)
    if format == "pdf":
        return Response(data, media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="art15-report-{lang}.pdf"'})
    # the report is a self-contained document with its own stylesheet and no script
    return Response(data, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                                        "img-src data:; base-uri 'none'; form-action 'none'; "
                                                        "frame-ancestors 'none'"})


@router.get("/ui/dpo/audit", response_class=HTMLResponse)
def audit_page(request: Request, ctx: RequestContext = Depends(ui("ui.audit"))) -> Response:
    return render(request, "audit.html", rows=None, form=dict.fromkeys(("action", "user", "target_id", "since"), ""))


@router.post("/ui/dpo/audit", response_class=HTMLResponse)
def audit_search(request: Request, csrf: str = Form(max_length=100), action: str = Form(default="", max_length=64),
                 user: str = Form(default="", max_length=64), target_id: str = Form(default="", max_length=128),
                 since: str = Form(default="", max_length=40),
                 ctx: RequestContext = Depends(ui("ui.audit"))) -> Response:
    from ..access import auditlog
    from ..web.routes_recordings import _time

    check_csrf(request, csrf)
    rows = auditlog.query(get_app(request), ctx, since_seq=0, action=action or None, target_id=target_id or None,
                          user=user or None, since=_time("since", since or None), limit=auditlog.MAX_LIMIT)
    form = {"action": action, "user": user, "target_id": target_id, "since": since}
    return render(request, "audit.html", rows=rows[-200:][::-1], form=form)


# --------------------------------------------------------------------------- administration


def _stores(app: App) -> list[dict[str, Any]]:
    out = []
    for name, store in app.stores.stores.items():
        try:
            store.exists("callfort-health-probe")
            out.append({"name": name, "type": type(store).__name__, "ok": True, "error": None})
        except Exception as exc:  # any failure of the probe is the store's health
            out.append({"name": name, "type": type(store).__name__, "ok": False, "error": f"{type(exc).__name__}"})
    return out


def _sources(app: App) -> list[dict[str, Any]]:
    from ..capture import controller

    out = []
    for r in controller.runners(app):
        for src in r.get("sources") or []:
            if isinstance(src, dict):
                out.append({"name": src.get("name"), "connected": src.get("connected"), "runner": r["host"],
                            "heartbeat_at": r["heartbeat_at"], "detail": {k: v for k, v in src.items()
                                                                          if k not in ("name", "connected")}})
    return out


@router.get("/ui/admin", response_class=HTMLResponse)
def admin(request: Request, ctx: RequestContext = Depends(ui("ui.admin"))) -> Response:
    from hookspecs.types import AccessTarget

    from ..access.guard import authorize
    from ..access.roles import ROLES

    app = get_app(request)
    user_rows = [u.as_dict() for u in users.list_users(app, ctx)]
    authorize(app, ctx, "users.manage", AccessTarget(kind="system"), detail={"function": "ui.admin.system"})
    plugins = [p.as_dict() for p in sorted(app.pm.statuses, key=lambda p: p.name)]
    return render(request, "admin.html", users=user_rows, roles_all=sorted(ROLES), plugins=plugins,
                  stores=_stores(app), sources=_sources(app))


@router.post("/ui/admin/users/{username}/roles")
def admin_roles(username: str, request: Request, csrf: str = Form(max_length=100),
                add: str = Form(default="", max_length=32), remove: str = Form(default="", max_length=32),
                reason: str = Form(max_length=2000), ctx: RequestContext = Depends(ui("ui.users.roles"))) -> Response:
    check_csrf(request, csrf)
    if not add and not remove:
        raise InputError("choose a role to add or remove")
    users.request_role_change(get_app(request), ctx, username, add=[add] if add else [],
                              remove=[remove] if remove else [], reason=reason)
    return _back("/ui/admin", "role_requested")


def handle(request: Request, exc: CallFortError) -> Response:
    """A CallFortError on a UI path: log-in page, or an HTML error with the message."""
    if isinstance(exc, AuthenticationFailed):
        return render_error(request, 401, str(exc), login=True)
    return render_error(request, exc.http_status, str(exc))
