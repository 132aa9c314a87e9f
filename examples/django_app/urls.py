"""The example's URLs: a page and a JSON endpoint."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("api/me", views.me, name="me"),
]
