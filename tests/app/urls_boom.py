"""A URLconf with one view that raises, for the error-log tests."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path


def boom(request: HttpRequest) -> HttpResponse:
    raise ValueError("boom from the test view")


urlpatterns = [path("boom/", boom)]
