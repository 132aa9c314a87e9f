"""WSGI entry point: Django behind the WeChat login (`runserver` and gunicorn serve this)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from wxauth_middleware.contrib.django import wrap_wsgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app.settings")

application = wrap_wsgi(get_wsgi_application())
