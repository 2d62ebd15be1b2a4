"""The pages as served: ready for `Content-Security-Policy: script-src 'self'; style-src 'self'`, no CDN."""

from __future__ import annotations

import re

import pytest

PAGES = ["/", "/models", "/about", "/internals"]


@pytest.mark.parametrize("path", PAGES)
def test_page_has_no_inline_script_style_or_handler(client, path):
    response = client.get(path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html), "inline <script>"
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "a resource from another origin"


def test_every_script_and_stylesheet_is_served(client):
    assets = set()
    for path in PAGES:
        assets.update(re.findall(r'(?:src|href)="(/static/[^"]+)"', client.get(path).get_data(as_text=True)))
    for module in [asset for asset in assets if asset.endswith(".js")]:
        imports = re.findall(r'from "\./([\w.]+)"', client.get(module).get_data(as_text=True))
        assets.update(f"/static/{name}" for name in imports)
    pages = {"/static/style.css", "/static/draw.js", "/static/models.js", "/static/internals.js"}
    assert pages | {"/static/pad.js", "/static/api.js", "/static/pixels.js"} <= assets
    for asset in sorted(assets):
        assert client.get(asset).status_code == 200, asset
