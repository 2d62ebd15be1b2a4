"""The pages a person uses: draw and correct, compare the models, look inside them, review, about; and /healthz."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template

from livedigits.web.current import server
from livedigits.web.limits import unlimited

pages = Blueprint("pages", __name__)

PAGE = "a page of static markup: it asks nothing of the models, and the API it calls is limited"


@pages.get("/")
@unlimited(PAGE)
def draw_page() -> str:
    return render_template("index.html")


@pages.get("/models")
@unlimited(PAGE)
def models_page() -> str:
    return render_template("models.html")


@pages.get("/about")
@unlimited(PAGE)
def about_page() -> str:
    return render_template("about.html")


@pages.get("/review")
@unlimited(PAGE)
def review_page() -> str:
    return render_template("review.html")


@pages.get("/internals")
@unlimited(PAGE)
def internals_page() -> str:
    return render_template("internals.html")


@pages.get("/healthz")
@unlimited("the platform's and the tests' probe: it reads one reference in memory, no lock, no storage")
def healthz() -> Response:
    return jsonify(server().health())
