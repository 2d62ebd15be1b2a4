"""JSON answers encoded by orjson: a prediction's answer (784 pixels and four top-3s) in a tenth of the time of the
standard library's encoder, with the same JSON (keys sorted, compact, a newline at the end, as Flask's own).

Only encoding: request bodies are still read by the standard library, which is what tells NaN and lone surrogates
in a body apart (the inputs' checks rely on it)."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


class FastJSON(DefaultJSONProvider):
    """Flask's JSON provider, encoding with orjson (Flask's `default` for what orjson does not know)."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs.keys() - {"separators"}:  # indent and the like: the standard library's, as Flask's would
            return super().dumps(obj, **kwargs)
        return orjson.dumps(obj, default=self.default, option=OPTIONS).decode().removesuffix("\n")

    def response(self, *args: Any, **kwargs: Any) -> Response:
        if self._app.debug:
            return super().response(*args, **kwargs)
        body = orjson.dumps(self._prepare_response_obj(args, kwargs), default=self.default, option=OPTIONS)
        return self._app.response_class(body, mimetype=self.mimetype)
