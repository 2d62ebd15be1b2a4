"""Abuse: client addresses behind a proxy, rate limits, CORS, security headers, admin tokens, poisoning, leaks."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import MNIST, create_app
from drawings import stroke_canvas, to_data_url
from flask import Flask

import functions
from livedigits.config import DEFAULT_RATE_LIMITS, Config, parse_rate_limits
from livedigits.state.storage import StorageError
from livedigits.web import inputs, limits

ONE = to_data_url(stroke_canvas([(140, 40), (140, 240)]))
EMPTY_PIXELS = {"input": [0] * 784}  # answered 422 at once: cheap requests that still count
LEAKS = re.compile(r"Traceback|File \"|/work/|/tmp/|/root/|site-packages|\.py\b")


def client_at(app: Flask, address: str):
    """A test client whose TCP peer is `address`."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def n_entries(store: Path) -> int:
    return len(list((store / "log").glob("*.json"))) if (store / "log").exists() else 0


@pytest.fixture(scope="module")
def limited(tmp_path_factory) -> tuple[Flask, Path]:
    store = tmp_path_factory.mktemp("limited") / "store"
    config = Config(storage_url=str(store), sync_interval=0, rate_limits="predict=3/minute;train=2/minute")
    return create_app(config), store


# --- configuration ------------------------------------------------------------------------------


def test_rate_limit_settings_parse_and_fail_early():
    others = {"samples": "300/minute", "export": "3/minute"}
    assert parse_rate_limits(DEFAULT_RATE_LIMITS) == {
        "predict": "60/minute",
        "train": "20/minute",
        "admin": "10/minute",
        **others,
    }
    assert parse_rate_limits("train=5/second,30/minute") == {
        "predict": "60/minute",
        "train": "5/second,30/minute",
        "admin": "10/minute",
        **others,
    }
    assert parse_rate_limits("predict=off; admin=1/hour") == {"train": "20/minute", "admin": "1/hour", **others}
    assert parse_rate_limits("off") == parse_rate_limits(" OFF ") == {}
    for bad in ("predict=lots", "guess=1/minute", "predict", "train=60/fortnight"):
        with pytest.raises(ValueError):
            parse_rate_limits(bad)
    with pytest.raises(ValueError):
        Config(rate_limits="predict=lots")  # a typo stops the boot instead of serving without limits
    with pytest.raises(ValueError):
        Config(trusted_proxies=-1)


def test_environment_names_the_proxies_limits_and_origins(monkeypatch):
    for name in ("TRUSTED_PROXIES", "DYNO", "RATE_LIMITS", "CORS_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    config = Config.from_env()
    assert config.trusted_proxies == 0 and config.rate_limits == DEFAULT_RATE_LIMITS and config.cors_origins == "*"
    monkeypatch.setenv("DYNO", "web.1")  # Heroku: one router in front
    monkeypatch.setenv("EPHEMERAL_DISK", "1")  # (a dyno refuses its own disk otherwise: test_heroku)
    assert Config.from_env().trusted_proxies == 1
    monkeypatch.setenv("TRUSTED_PROXIES", "2")
    monkeypatch.setenv("RATE_LIMITS", "off")
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example")
    config = Config.from_env()
    assert (config.trusted_proxies, config.request_limits, config.cors_origins) == (2, {}, "https://a.example")


def test_every_route_declares_its_budget_where_it_is_defined(limited):
    """Walk the URL map: each route says which budget it draws from (@limited) or why it has none (@unlimited),
    every route that takes input draws from one, the admin routes share the admin budget, the exports have one
    of their own, and so do the drawings' images (but for a request with a token: the admin budget)."""
    app, _ = limited
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue  # Flask's own: the files under static/
        view = app.view_functions[rule.endpoint]
        assert limits.declared(view), f"{rule.rule} declares no rate limit: add @limited(kind) or @unlimited(reason)"
        if rule.methods & {"POST", "PUT", "PATCH", "DELETE"}:
            assert limits.kind_of(view) is not None, f"{rule.rule} takes input without a budget"
        if rule.rule.startswith(("/api/admin/", "/api/review")):
            assert limits.kind_of(view) == "admin", rule.rule
        if rule.rule in ("/api/samples/export", "/api/models/export"):
            assert limits.kind_of(view) == limits.kind_of(view, with_token=True) == "export", rule.rule
        if rule.rule.endswith(".png"):
            assert (limits.kind_of(view), limits.kind_of(view, with_token=True)) == ("samples", "admin"), rule.rule
        else:
            assert limits.kind_of(view, with_token=True) == limits.kind_of(view), rule.rule


def test_a_route_cannot_be_declared_with_an_unknown_kind_or_no_reason():
    with pytest.raises(ValueError, match="kind"):
        limits.limited("download")
    with pytest.raises(ValueError, match="kind"):
        limits.limited("samples", with_token="download")
    with pytest.raises(ValueError, match="why"):
        limits.unlimited(" ")


def test_the_exports_have_a_budget_of_their_own(store):
    """An export builds a zip of megabytes: a few a minute, apart from the review's budget (each way round)."""
    budgets = "admin=2/minute;export=1/minute"
    app = create_app(Config(storage_url=str(store), admin_token="right", rate_limits=budgets))
    client = app.test_client()
    right, wrong = {"Authorization": "Bearer right"}, {"Authorization": "Bearer wrong"}
    exported = client.get("/api/models/export", headers=right)
    assert exported.status_code == 200 and exported.mimetype == "application/zip"
    for path in ("/api/models/export", "/api/samples/export"):
        over = client.get(path, headers=wrong)  # token guesses spend the export budget too
        assert over.status_code == 429 and over.get_json()["error"] == "too_many_requests"
    assert client.get("/api/review", headers=right).status_code == 200
    assert client.get("/api/review", headers=right).status_code == 200
    assert client.get("/api/review", headers=right).status_code == 429


# --- rate limits ----------------------------------------------------------------------------------


def test_a_client_over_its_budget_gets_429_json_and_others_do_not(limited):
    app, store = limited
    flood = client_at(app, "198.51.100.1")
    # predict, hook2 and estimate share one budget: switching routes does not reset it.
    assert flood.post("/api/predict", json={"image": ONE}).status_code == 200
    assert flood.post("/hook2", data={"imageBase64": ONE}).status_code == 200
    assert flood.post("/estimate", json=EMPTY_PIXELS).status_code == 422  # bad requests count too
    refused = flood.post("/api/predict", json={"image": ONE})
    assert refused.status_code == 429
    assert set(refused.get_json()) == {"error", "message"} and refused.get_json()["error"] == "too_many_requests"
    assert "predict" in refused.get_json()["message"] and int(refused.headers["Retry-After"]) > 0
    assert flood.post("/estimate", json=EMPTY_PIXELS).status_code == 429
    # Training has its own budget; /api/train, /hook3 and /hook share it. A refused train stores nothing.
    before = n_entries(store)
    assert flood.post("/api/train", json={"image": ONE, "label": 1}).status_code == 200
    assert flood.post("/hook3", data={"imageBase64": ONE, "digit": "1"}).status_code == 200
    assert flood.post("/hook", data={"imageBase64": ONE, "digit": "1"}).status_code == 429
    assert flood.post("/api/train", json={"image": ONE, "label": 1}).status_code == 429
    assert n_entries(store) == before + 2
    # Another address, and routes without a budget, are unaffected.
    assert client_at(app, "198.51.100.2").post("/api/predict", json={"image": ONE}).status_code == 200
    assert flood.get("/healthz").status_code == 200 and flood.get("/api/stats").status_code == 200
    # A CORS preflight is not a request to learn or predict: it spends nothing.
    preflight = {"Origin": "https://old.example", "Access-Control-Request-Method": "POST"}
    fresh = client_at(app, "198.51.100.3")
    for _ in range(5):
        assert fresh.options("/estimate", headers=preflight).status_code == 200
    assert fresh.post("/estimate", json=EMPTY_PIXELS).status_code == 422


def test_off_lifts_the_limits(store):
    client = create_app(Config(storage_url=str(store), rate_limits="off")).test_client()
    assert all(client.post("/estimate", json=EMPTY_PIXELS).status_code == 422 for _ in range(70))


def test_client_address_is_the_hop_the_trusted_proxy_appended(store):
    config = Config(storage_url=str(store), rate_limits="predict=2/minute", trusted_proxies=1)
    app = create_app(config)
    router = client_at(app, "10.1.2.3")  # every request arrives from Heroku's router

    def predict(forwarded_for: str) -> int:
        return router.post("/estimate", json=EMPTY_PIXELS, headers={"X-Forwarded-For": forwarded_for}).status_code

    # The router appends the address it saw; whatever the client wrote before it is not trusted.
    assert [predict(f"{spoof}, 203.0.113.7") for spoof in ("1.1.1.1", "2.2.2.2", "3.3.3.3")] == [422, 422, 429]
    assert predict("203.0.113.8") == 422  # a different client behind the same router has its own budget
    secure = router.get("/healthz", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Strict-Transport-Security" not in router.get("/healthz").headers


def test_without_a_trusted_proxy_forwarded_headers_are_ignored(store):
    app = create_app(Config(storage_url=str(store), rate_limits="predict=2/minute"))
    client = client_at(app, "198.51.100.9")
    statuses = [
        client.post("/estimate", json=EMPTY_PIXELS, headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
        for n in range(3)
    ]
    assert statuses == [422, 422, 429]
    spoofed = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in spoofed.headers


# --- CORS and headers -------------------------------------------------------------------------------


def test_cors_only_on_the_original_clients_routes(limited):
    app, _ = limited
    client = client_at(app, "198.51.100.20")
    origin = {"Origin": "https://old-client.example"}
    response = client.post("/hook2", data={"imageBase64": ONE}, headers=origin)
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://old-client.example")
    assert "Access-Control-Allow-Credentials" not in response.headers
    preflight = client.options(
        "/estimate",
        headers={**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Content-Type"},
    )
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
    for path in ("/api/predict", "/api/train", "/api/admin/reset", "/healthz"):
        response = client.options(path, headers={**origin, "Access-Control-Request-Method": "POST"})
        assert "Access-Control-Allow-Origin" not in response.headers, path
    assert "Access-Control-Allow-Origin" not in client.get("/api/stats", headers=origin).headers


def test_cors_origins_from_config(store):
    app = create_app(Config(storage_url=str(store), cors_origins="https://a.example, https://b.example"))
    client = app.test_client()
    for origin, allowed in (("https://b.example", True), ("https://evil.example", False)):
        response = client.post("/estimate", json=EMPTY_PIXELS, headers={"Origin": origin})
        assert (response.headers.get("Access-Control-Allow-Origin") == origin) is allowed


def test_security_headers_everywhere_and_pages_need_no_inline_code(limited):
    app, _ = limited
    client = client_at(app, "198.51.100.30")
    responses = {
        "/": client.get("/"),
        "/models": client.get("/models"),
        "/about": client.get("/about"),
        "/healthz": client.get("/healthz"),
        "404": client.get("/nothing/here"),
        "400": client.post("/api/predict", data="{", content_type="application/json"),
    }
    for name, response in responses.items():
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp, name
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["X-Frame-Options"] == "DENY", name
        assert response.headers["Referrer-Policy"], name
    for page in ("/", "/models", "/about", "/internals"):
        html = client.get(page).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"inline script on {page}: the CSP blocks it"
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html), f"inline style or handler on {page}"


# --- admin ----------------------------------------------------------------------------------------------


ADMIN_CALLS = [
    ("post", "/api/admin/reset", None),
    ("post", "/api/admin/rollback", {"model_version": 0}),
    ("get", "/api/samples/export", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_admin_routes_are_off_without_a_token(limited, method, path, body):
    app, store = limited
    client = client_at(app, "198.51.100.40")
    before = n_entries(store)
    response = getattr(client, method)(path, json=body, headers={"Authorization": "Bearer anything"})
    assert response.status_code == 403 and response.get_json()["error"] == "admin_disabled"
    assert n_entries(store) == before


def test_admin_token_401_403_and_its_own_budget(store):
    budgets = "admin=4/minute;export=2/minute"  # what the calls below spend: the export has a budget of its own
    app = create_app(Config(storage_url=str(store), admin_token="correct-horse", rate_limits=budgets))
    client = client_at(app, "198.51.100.41")
    assert "compare_digest" in inspect.getsource(inputs.require_admin)  # constant-time comparison
    for method, path, body in ADMIN_CALLS:
        assert getattr(client, method)(path, json=body).status_code == 401
        wrong = getattr(client, method)(path, json=body, headers={"Authorization": "Bearer correct-horsf"})
        assert wrong.status_code == 403 and wrong.get_json()["error"] == "forbidden"
    assert n_entries(store) == 0
    assert client.post("/api/admin/reset", headers={"Authorization": "Bearer correct-horse"}).status_code == 429
    assert client.get("/api/samples/export", headers={"Authorization": "Bearer correct-horse"}).status_code == 429
    other = client_at(app, "198.51.100.42")
    response = other.post("/api/admin/reset", headers={"Authorization": "Bearer correct-horse"})
    assert response.status_code == 200 and response.get_json() == {"model_version": 1}


# --- errors say what, never where ------------------------------------------------------------------------


def test_errors_carry_no_traces_or_paths(store, monkeypatch):
    app = create_app(Config(storage_url=str(store)))
    client = app.test_client()
    service = app.extensions["digits"]

    def crash(*args, **kwargs):
        raise RuntimeError(f"unexpected at {Path(__file__).resolve()} line 1")

    def store_down(*args, **kwargs):
        raise StorageError(f"cannot write log/0000000001.json in {store}: Read-only file system")

    monkeypatch.setattr(service, "predict", crash)
    monkeypatch.setattr(service, "train", store_down)
    crashed = client.post("/api/predict", json={"image": ONE})
    assert crashed.status_code == 500 and set(crashed.get_json()) == {"error", "message"}
    down = client.post("/api/train", json={"image": ONE, "label": 1})
    assert down.status_code == 503 and down.get_json()["error"] == "storage_unavailable"
    others = [
        client.get("/api/samples/123.png"),
        client.get("/no/such/page"),
        client.put("/api/predict"),
        client.post("/api/predict", data=b"\xff" * 10, content_type="application/json"),
        client.post("/api/train", json={"image": "data:image/svg+xml;base64,PHN2Zz4=", "label": 1}),
    ]
    for response in (crashed, down, *others):
        assert response.is_json and not LEAKS.search(response.get_data(as_text=True)), response.get_data()


# --- poisoning shows ------------------------------------------------------------------------------------


def test_poisoning_flags_the_retrained_model(store):
    """Forty '1's labelled 7, then honest '1's: the retrained models, taught the lie, now do worse than the
    originals on honest drawings, and /healthz and /api/stats say which (small windows keep this quick)."""
    from livedigits.state.mnist import load_split

    images, labels = load_split(MNIST, "train")
    ones = [functions.decode_drawing(to_data_url_of(images[i])) for i in np.flatnonzero(labels == 1)[:50]]
    small_windows = {"recent_window": 10, "degraded_min_scored": 10}
    app = create_app(Config(storage_url=str(store), rate_limits="off", checkpoint_every=10_000, **small_windows))
    client = app.test_client()
    service = app.extensions["digits"]
    for digit, png in ones[:40]:
        service.train(digit, png, 7)
    assert client.get("/healthz").get_json()["degraded"] == []  # agreeing with the poison is not degrading
    for digit, png in ones[40:]:
        service.train(digit, png, 1)
    health = client.get("/healthz").get_json()
    stats = client.get("/api/stats").get_json()
    assert health["degraded"] and health["status"] == "ok"
    assert set(health["degraded"]) <= {"fnn.retrained", "cnn.retrained"}
    assert stats["degraded"] == health["degraded"]
    for name in health["degraded"]:
        model = name.split(".")[0]
        assert stats["accuracy"][model]["retrained"]["recent"] < stats["accuracy"][model]["original"]["recent"]


def to_data_url_of(ink: np.ndarray) -> str:
    from livedigits.offline.canvas import canvas_of

    return to_data_url(canvas_of(ink))
