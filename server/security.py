"""Who may talk to the server: token (as Jupyter does), Host allow-list, Origin / CSRF, read-only, body limits.

One :class:`Guard` decides; it is applied at three edges:

* a WSGI middleware around the whole app (REST, static files, the Socket.IO HTTP/WebSocket handshake), so no
  request from a foreign Host, a foreign Origin or without the token reaches Flask or Socket.IO;
* a Flask ``before_request`` hook for bodies: size caps (413), content types (415) and strict JSON (400);
* the Socket.IO ``connect`` handler (same checks; the path ``socketio.test_client`` takes) and, in read-only
  mode, the events that change a collection.

Rules (every refusal is the JSON error shape ``{ok: false, error, status}``):

1. Host must be localhost, 127.0.0.1, [::1] (any port), the address the server is bound to, a name given with
   ``--allow-host``, or (when bound to every interface) an IP literal; else 400. This defeats DNS rebinding.
2. The token: ``?token=`` (first visit: answered with a cookie and a redirect that drops it from the URL), the
   HttpOnly SameSite=Strict cookie ``sonomap_token_<port>``, or the ``X-Sonomap-Token`` header; else 401
   (``/static/`` is public: it is the app's code). A wrong token is 403.
3. State-changing methods (POST/PUT/PATCH/DELETE): an Origin, when present, must be the server's own
   (``scheme://Host``) - 403; and the request must carry a header no cross-origin simple request can send:
   ``X-Sonomap-Token`` (the token, or any value with ``--no-token``) or the browser-set ``Sec-Fetch-Site:
   same-origin`` - else 403. The Socket.IO handshake needs its Origin, when present, to be the server's own.
4. Read-only mode refuses every state-changing REST request and the ``preprocess``/``remap`` events (403).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask, request
from flask.testing import FlaskClient
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.wrappers import Request, Response

from preprocess.errors import ParameterError

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Sonomap-Token"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
SECRET_FILE = ".sonomap_secret_key"
#: Socket.IO events that change a collection (refused in read-only mode).
MUTATING_EVENTS = ("preprocess", "remap")
#: Endpoints whose body is not JSON: the upload chunk (raw bytes, its own cap) and the labels import (a form).
RAW_ENDPOINTS = frozenset({"uploads.chunk"})
FORM_ENDPOINTS = frozenset({"labels.import_csv"})
MAX_JSON_DEPTH = 32
_INT64 = 2**63


def cookie_name(port: int) -> str:
    """One cookie per port: two servers on one machine do not overwrite each other's token."""
    return f"sonomap_token_{port}"


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this computer can reach."""
    h = host.strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """``'[::1]:5000' -> '[::1]'``, ``'Localhost:5000' -> 'localhost'``; '' for a malformed header."""
    h = (host_header or "").strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[: end + 1] if end > 0 else ""
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return False


def secret_key(settings: Any) -> str:
    """``settings.secret_key`` if set, else a random key kept in the collections folder (mode 0600)."""
    if getattr(settings, "secret_key", None):
        return settings.secret_key
    path = Path(settings.collections_dir) / SECRET_FILE
    try:
        key = path.read_text(encoding="ascii").strip()
        if len(key) >= 32:
            return key
    except (OSError, UnicodeDecodeError):
        pass
    key = secrets.token_hex(32)
    tmp = path.with_name(f"{SECRET_FILE}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key)
        os.replace(tmp, path)
    except OSError as e:  # a read-only collections folder: a key for this run only
        log.warning("could not keep the secret key in %s (%s); using one for this run only", path.name, e)
    return key


class Guard:
    """The access rules above, for one server (its settings)."""

    def __init__(self, settings: Any) -> None:
        self.token: str | None = settings.token if settings.auth else None
        self.port = int(settings.port)
        self.cookie = cookie_name(self.port)
        self.read_only = bool(settings.read_only)
        bind = host_name(settings.host) or settings.host.lower()
        self.hosts = set(LOCAL_HOSTS) | {host_name(h) or h.lower() for h in settings.allowed_hosts}
        self.any_ip = bind in ("0.0.0.0", "::", "[::]", "")
        if not self.any_ip:
            self.hosts.add(bind if not (":" in bind and not bind.startswith("[")) else f"[{bind}]")

    # -- the single checks -------------------------------------------------------------------------------

    def host_ok(self, host_header: str) -> bool:
        name = host_name(host_header)
        return bool(name) and (name in self.hosts or (self.any_ip and _is_ip(name)))

    def token_of(self, req: Request, extra: Any = None) -> str | None:
        """The token this request presents (header, cookie, ``?token=``, or a socket ``auth`` dict)."""
        if isinstance(extra, dict) and isinstance(extra.get("token"), str):
            return extra["token"]
        return req.headers.get(TOKEN_HEADER) or req.cookies.get(self.cookie) or req.args.get("token")

    def token_valid(self, given: str | None) -> bool:
        return self.token is None or (given is not None and hmac.compare_digest(given.encode(), self.token.encode()))

    def origin_ok(self, req: Request) -> bool:
        origin = req.headers.get("Origin")
        if origin is None:
            return True
        return origin.lower() in (f"{s}://{req.host.lower()}" for s in ("http", "https"))

    def check(self, req: Request, *, auth: Any = None) -> tuple[int, str] | None:
        """``None`` if ``req`` may proceed, else ``(status, message)``."""
        if not self.host_ok(req.host):
            return 400, f"Host {req.host!r} is not served here; start the server with --allow-host NAME to add it"
        path = req.path
        socket = path.startswith("/socket.io")
        if not self.origin_ok(req) and (socket or req.method in STATE_CHANGING):
            return 403, f"requests from {req.headers.get('Origin')!r} are refused: only this server's own page"
        public = req.method in ("GET", "HEAD") and (path.startswith("/static/") or path == "/favicon.ico")
        if not public:
            given = self.token_of(req, auth)
            if given is None and self.token is not None:
                return 401, "a token is needed: open the URL the server printed (http://…/?token=…)"
            if not self.token_valid(given):
                return 403, "wrong token: open the URL the server printed (http://…/?token=…)"
        if req.method in STATE_CHANGING and not socket:
            if self.read_only:
                return 403, "this server is read-only (--read-only): it serves maps and audio but refuses changes"
            header = req.headers.get(TOKEN_HEADER)
            same_origin = req.headers.get("Sec-Fetch-Site") == "same-origin"
            if not same_origin and not (header and self.token_valid(header)):
                return 403, f"changes need the {TOKEN_HEADER} header (cross-site requests are refused)"
        return None


class GuardMiddleware:
    """WSGI middleware applying :meth:`Guard.check` to every request; handles the first ``?token=`` visit."""

    def __init__(self, wsgi_app: Any, guard: Guard) -> None:
        self.wsgi_app = wsgi_app
        self.guard = guard

    def __call__(self, environ: dict, start_response: Any) -> Any:
        req = Request(environ)
        refused = self.guard.check(req)
        if refused is not None:
            status, message = refused
            if req.path == "/" and status in (401, 403):
                body = f"<!doctype html><title>sonomap</title><p>{message}</p>"
                return Response(body, status=status, mimetype="text/html")(environ, start_response)
            resp = Response(json.dumps({"ok": False, "error": message, "status": status}), status=status)
            resp.mimetype = "application/json"
            return resp(environ, start_response)
        query_token = req.args.get("token")
        if req.method == "GET" and req.path == "/" and query_token is not None and self.guard.token is not None:
            rest = [(k, v) for k, v in req.args.items(multi=True) if k != "token"]
            resp = Response(status=302, headers={"Location": "/" + (f"?{urlencode(rest)}" if rest else "")})
            resp.set_cookie(self.guard.cookie, query_token, httponly=True, samesite="Strict", path="/")
            return resp(environ, start_response)
        return self.wsgi_app(environ, start_response)


# -- bodies ---------------------------------------------------------------------------------------------------


def _bad_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_int(text: str) -> int:
    if len(text) > 20 or not -_INT64 <= int(text) < _INT64:
        raise ValueError(f"the number {text[:24]}{'…' if len(text) > 24 else ''} is out of range")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:24]} is out of range")
    return value


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if d > MAX_JSON_DEPTH:
                return d
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def parse_json_strict(data: bytes | str) -> Any:
    """JSON without NaN/Infinity, integers within int64, finite floats, nesting at most 32 deep.

    Raises :class:`ParameterError` with what was wrong (never a ``RecursionError``).
    """
    try:
        value = json.loads(data, parse_constant=_bad_constant, parse_int=_parse_int, parse_float=_parse_float)
    except RecursionError:
        raise ParameterError(f"the JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ParameterError(f"the body is not valid JSON: {str(e)[:200]}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise ParameterError(f"the JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels)")
    return value


def _check_body(settings: Any, chunk_bytes: int) -> None:
    """before_request: whole numbers in the URL fit int64; caps and content types for bodies of changes."""
    for key, value in (request.view_args or {}).items():
        if isinstance(value, int) and not -_INT64 <= value < _INT64:
            raise ParameterError(f"{key} {value} is out of range")
    if request.method not in STATE_CHANGING:
        return
    endpoint = request.endpoint or ""
    length = request.content_length
    if endpoint in RAW_ENDPOINTS:
        cap, kind = chunk_bytes, "an upload chunk"
    elif endpoint in FORM_ENDPOINTS:
        cap, kind = settings.max_form_mb * 2**20, "a form"
    else:
        cap, kind = settings.max_json_mb * 2**20, "a JSON body"
    request.max_content_length = cap
    if length is not None and length > cap:
        raise RequestEntityTooLarge(f"{kind} may be at most {cap // 2**20} MiB; this request has {length:,} bytes")
    if endpoint in RAW_ENDPOINTS:
        return
    mimetype = request.mimetype
    if endpoint in FORM_ENDPOINTS:
        if length and mimetype != "multipart/form-data":
            raise UnsupportedMediaType("send the file as multipart/form-data (field 'file')")
        return
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise RequestEntityTooLarge(f"{kind} may be at most {cap // 2**20} MiB") from None
    if not data:
        return
    if not mimetype:
        raise ParameterError("expected a JSON body with Content-Type: application/json")
    if mimetype != "application/json":
        raise UnsupportedMediaType(f"send JSON with Content-Type: application/json (got {mimetype or 'none'!r})")
    parse_json_strict(data)


def _too_large(e: RequestEntityTooLarge):
    from flask import jsonify

    resp = jsonify({"ok": False, "error": e.description or "the request body is too large", "status": 413})
    resp.status_code = 413
    return resp


class TokenTestClient(FlaskClient):
    """``app.test_client()`` of a guarded app: sends the token header, as the page does (in-process code only)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        guard: Guard = self.application.extensions["sonomap"]["guard"]
        self.environ_base["HTTP_X_SONOMAP_TOKEN"] = guard.token or "-"


def install(app: Flask, socketio: Any, settings: Any) -> Guard:
    """Apply the guard to ``app`` and ``socketio``; call once, after every route and event is registered."""
    guard = Guard(settings)
    app.extensions["sonomap"]["guard"] = guard
    app.config["SECRET_KEY"] = secret_key(settings)
    app.config["MAX_FORM_MEMORY_SIZE"] = 2**20
    uploads = app.extensions["sonomap"].get("uploads")
    chunk_bytes = int(getattr(getattr(uploads, "limits", None), "max_chunk_bytes", 32 * 2**20))
    app.config["MAX_CONTENT_LENGTH"] = max(settings.max_json_mb * 2**20, settings.max_form_mb * 2**20, chunk_bytes)
    app.wsgi_app = GuardMiddleware(app.wsgi_app, guard)  # outermost: before Socket.IO's own middleware
    app.before_request(lambda: _check_body(settings, chunk_bytes))
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.test_client_class = TokenTestClient

    def on_connect(auth: Any = None) -> bool:
        refused = guard.check(request, auth=auth)
        if refused is not None:
            log.info("socket connection refused: %s", refused[1])
            return False
        return True

    socketio.on("connect")(on_connect)
    _wrap_test_client(socketio, guard)
    if guard.read_only:
        for event in MUTATING_EVENTS:
            _refuse_event(socketio, event)
    return guard


def _wrap_test_client(socketio: Any, guard: Guard) -> None:
    """``socketio.test_client(app)`` presents the token unless the caller passes ``auth`` or ``headers``."""
    original = socketio.test_client

    def test_client(app: Any, *args: Any, **kwargs: Any) -> Any:
        if "auth" not in kwargs and "headers" not in kwargs:
            kwargs["auth"] = {"token": guard.token or "-"}
        return original(app, *args, **kwargs)

    socketio.test_client = test_client


def _refuse_event(socketio: Any, event: str) -> None:
    handlers = socketio.server.handlers.get("/", {})
    if event not in handlers:
        return
    message = f"this server is read-only (--read-only): {event!r} is refused"

    def refused(*_args: Any) -> dict[str, Any]:
        return {"ok": False, "error": message, "status": 403}

    handlers[event] = refused


def url_with_token(base: str, token: str | None) -> str:
    """The URL to print: ``http://127.0.0.1:5000/?token=…`` (or without a token)."""
    return f"{base}/?{urlencode({'token': token})}" if token else f"{base}/"
