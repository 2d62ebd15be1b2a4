"""Each route's rate-limit budget, declared where the route is defined: `@limited("predict")` draws from a kind's
budget (Config.rate_limits names the kinds and their limits); `@unlimited("why")` states why a route has none.
tests/app/test_security.py walks the URL map, so a new route cannot be added without one of the two."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from livedigits.config import RATE_LIMIT_KINDS

View = TypeVar("View", bound=Callable)


def limited(kind: str, with_token: str | None = None, cost: Callable[[], int] | None = None) -> Callable[[View], View]:
    """The route draws from the `kind` budget of the client's address; a request that carries an Authorization
    header draws from `with_token` instead, when given: a route that also takes the admin token must not let it
    be guessed faster than the admin routes do. `cost`: how many of the budget's units a request takes, read from
    it before the route runs (one by default)."""
    for name in filter(None, (kind, with_token)):
        if name not in RATE_LIMIT_KINDS:
            raise ValueError(f"rate-limit kind must be one of {RATE_LIMIT_KINDS}, not {name!r}")

    def declare(view: View) -> View:
        view.rate_limit = kind
        view.rate_limit_with_token = with_token or kind
        view.rate_cost = cost
        return view

    return declare


def unlimited(reason: str) -> Callable[[View], View]:
    """The route has no budget, for `reason` (read by people, and required: a route is never unlimited by omission)."""
    if not reason.strip():
        raise ValueError("say why the route has no rate limit")

    def declare(view: View) -> View:
        view.rate_limit = None
        view.unlimited_because = reason
        return view

    return declare


def declared(view: Callable) -> bool:
    """Whether `view` declares its budget (or why it has none)."""
    return hasattr(view, "rate_limit") and (view.rate_limit is not None or bool(getattr(view, "unlimited_because", "")))


def kind_of(view: Callable | None, with_token: bool = False) -> str | None:
    """The budget `view` draws from (for a request carrying an Authorization header: `with_token`), or None."""
    if with_token:
        return getattr(view, "rate_limit_with_token", None)
    return getattr(view, "rate_limit", None)


def cost_of(view: Callable | None) -> int:
    """How many units of its budget the current request to `view` takes."""
    cost = getattr(view, "rate_cost", None)
    return 1 if cost is None else cost()
