"""Settings of the example Django project: no database, one template directory."""

from __future__ import annotations

import os
from pathlib import Path

from dev_settings import WXAUTH_OPTIONS

BASE_DIR = Path(__file__).resolve().parent

# Development only: production keys come from the environment, never from the code.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-django-secret-key-change-me")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

# The WeChat login's options. No "secret_key": wxauth derives its own signing key from
# SECRET_KEY (and SECRET_KEY_FALLBACKS, to rotate it).
WXAUTH = {key: value for key, value in WXAUTH_OPTIONS.items() if key != "secret_key"}

INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    # request.wechat_user, for views and templates (the login itself is in wsgi.py/asgi.py).
    "wxauth_middleware.contrib.django.WeChatUserMiddleware",
]
ROOT_URLCONF = "django_app.urls"
WSGI_APPLICATION = "django_app.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
