"""ASGI entry point: Django behind the WeChat login (`uvicorn --app-dir examples
django_app.asgi:application`). Django's ASGI handler sends no lifespan events; the middleware
does not need them."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from wxauth_middleware.contrib.django import wrap_asgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app.settings")

application = wrap_asgi(get_asgi_application())
