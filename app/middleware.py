"""Project middleware."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.cache import add_never_cache_headers


class NoStoreForUsersMiddleware:
    """Pages seen by a logged-in user are never stored by the browser or a proxy (`Cache-Control: no-store`):
    after logging out, Back shows nothing of them, and a shared machine keeps no copy."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            add_never_cache_headers(response)
        return response


class RejectNulBytesMiddleware:
    """A NUL byte in a query or form value is refused with 400 before any view sees it: PostgreSQL text cannot
    hold one, so it would otherwise surface as a 500 from whatever query the value reached."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for data in (request.GET, request.POST) if request.method == "POST" else (request.GET,):
            for key, values in data.lists():
                if "\x00" in key or any("\x00" in v for v in values):
                    return HttpResponseBadRequest(
                        f"The parameter {key.replace(chr(0), '')!r} holds a NUL byte; nothing was done.",
                        content_type="text/plain",
                    )
        return self.get_response(request)
