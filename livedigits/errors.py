"""The one error a request can be refused with, raised where the input is parsed and mapped once to JSON
(livedigits.web.errors)."""

from __future__ import annotations


class InputError(ValueError):
    """A request the service refuses: `code` names it for clients, `status` is its HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def empty_drawing() -> InputError:
    return InputError("empty_drawing", "Nothing is drawn: draw a digit first.", 422)
