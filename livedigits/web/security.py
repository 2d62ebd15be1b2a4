"""What the service does about clients it cannot trust: their address, their pace, their origin, their browser.

`install_security(app, config)` wires it once per app:
- bodies over the limit: 413 however they are sent, chunked too (livedigits.web.bodies);
- the client's address: behind Heroku's router, the last `X-Forwarded-For` hop (werkzeug's ProxyFix, trusting
  exactly `config.trusted_proxies` hops); with no proxy configured the header is ignored, since anyone can send it;
- rate limits per client address (Flask-Limiter), one budget per kind of route (each route declares its kind:
  livedigits.web.limits), so that switching between `/api/train` and `/hook3` does not double it; a client over
  its budget gets 429 JSON and a Retry-After;
- CORS (flask-cors) only on the original apps' routes, from `config.cors_origins`, without credentials;
- security headers on every response: a Content-Security-Policy without inline script, no sniffing, no framing.

Where the counts live is `config.rate_limit_storage`. In memory (the default) each process counts alone: with
several gunicorn workers or dynos a client may get up to that many times its budget, which still bounds a flood.
In Redis every process draws from one budget. If Redis stops answering, each process falls back to counting in
its own memory (the same limits, per process, as with memory://) and keeps serving; it goes back to Redis once
a ping succeeds, which Flask-Limiter tries on a request at most 1, 2, 4 ... 32 s after the last try.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, Response, current_app, request
from flask_cors import CORS
from flask_limiter import Limit, Limiter
from flask_limiter.util import get_remote_address
from redis import BlockingConnectionPool
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.middleware.proxy_fix import ProxyFix

from livedigits.config import Config
from livedigits.formation import redis_refusal
from livedigits.web.bodies import BoundedBody, refuse_large_bodies
from livedigits.web.legacy import LEGACY_ROUTES
from livedigits.web.limits import cost_of, kind_of

logger = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",  # the canvas and its snapshots
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
# Redis answers a rate-limit check in well under a millisecond on its own network: half a second to connect
# (TLS included) or to answer means it is gone, and the request goes on counting in this process's memory
# rather than wait (redis-py's defaults wait without end, then retry 3 times with up to 10 s of backoff).
# A connection that the server closed while idle needs no retry: the pool replaces it before use.
REDIS_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5, "retry": Retry(NoBackoff(), 0)}

BATCH_COUNTING = "; each drawing of a batch counts as one"  # /api/predict/batch draws one unit a drawing

# Sent only over HTTPS (as Heroku's router reports it), where a browser honours it.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


def install_security(app: Flask, config: Config) -> None:
    """Bounded bodies, trusted proxy hops, per-client rate limits, CORS for the legacy routes, security headers."""
    app.wsgi_app = BoundedBody(app.wsgi_app, config.max_request_bytes)
    if config.trusted_proxies:
        hops = config.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    app.before_request(refuse_large_bodies)
    storage = config.rate_limit_storage
    if (refused := redis_refusal(config)) is not None:
        logger.error(refused)
        storage = "memory://"
    install_rate_limits(app, config.request_limits, storage, config.redis_pool_size)
    origins = [origin.strip() for origin in config.cors_origins.split(",") if origin.strip()]
    CORS(
        app,
        resources={LEGACY_ROUTES: {"origins": origins}},
        methods=["POST"],
        allow_headers=["Content-Type"],
        supports_credentials=False,
        max_age=600,
    )
    app.after_request(add_security_headers)


def route_view() -> Callable | None:
    """The view function of the current request's route, or None (no route)."""
    return current_app.view_functions.get(request.endpoint) if request.url_rule is not None else None


def route_kind() -> str | None:
    """The budget the current request draws from, as its route declares it (livedigits.web.limits; a request
    that carries a token may draw from another), or None: a route that is not limited, no route at all, or a CORS
    preflight."""
    if request.method == "OPTIONS":
        return None
    return kind_of(route_view(), "Authorization" in request.headers)


def route_cost() -> int:
    """The units of its budget the current request takes: one, or as many as its route counts (a batch's drawings)."""
    return cost_of(route_view())


def install_rate_limits(
    app: Flask, limits: dict[str, str], storage_uri: str, redis_connections: int = Config.redis_pool_size
) -> Limiter | None:
    """One shared budget per kind of route and client address, counted in `storage_uri` (memory:// or a
    Redis URL) over at most `redis_connections` connections (a thread waits its turn for one); none at all
    when `limits` is empty."""
    if not limits:
        return None
    budgets = [
        Limit(
            value,
            scope=kind,
            shared=True,
            cost=route_cost,
            exempt_when=lambda kind=kind: route_kind() != kind,
            error_message=f"Too many {kind} requests from your address (at most {value}"
            f"{BATCH_COUNTING if kind == 'predict' else ''}); try again shortly.",
        )
        for kind, value in limits.items()
    ]
    return Limiter(
        get_remote_address,
        app=app,
        default_limits=budgets,
        storage_uri=storage_uri,
        storage_options=redis_pool(storage_uri, redis_connections) if storage_uri.startswith("redis") else {},
        # Redis down: count in this process's memory rather than refuse or stop limiting. swallow_errors
        # covers a request already waiting on Redis when another thread switched to memory.
        in_memory_fallback_enabled=True,
        swallow_errors=True,
        strategy="moving-window",  # a fixed window lets a client spend two budgets around its edge
        headers_enabled=True,
        key_prefix="digits",
    )


def redis_pool(url: str, size: int) -> dict:
    """A bounded pool: redis-py's default opens a connection per concurrent thread, without end. A thread that
    finds every connection busy for socket_timeout gets the limiter's memory fallback for that request."""
    pool = BlockingConnectionPool.from_url(url, max_connections=size, timeout=REDIS_OPTIONS["socket_timeout"],
                                           **REDIS_OPTIONS)  # fmt: skip
    return {"connection_pool": pool}


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
    return response
