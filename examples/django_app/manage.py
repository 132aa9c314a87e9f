"""Log in with WeChat in a Django project: a page that greets the user, and a JSON endpoint.

Run it from the repository root, against the local WeChat emulator:

    python -m pip install -e ".[examples]"      # once: uvicorn, FastAPI, Flask, Django
    python -m wxauth_middleware.emulator                            # terminal 1: "WeChat"
    python examples/django_app/manage.py runserver 127.0.0.1:8000   # terminal 2: this site

(ASGI: `uvicorn --app-dir examples django_app.asgi:application`; another WSGI server:
`gunicorn --chdir examples django_app.wsgi:application`.)

Then open http://127.0.0.1:8000/ with a WeChat user agent, e.g. Chrome DevTools -> Network
conditions -> User agent:

    Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like
    Gecko) Mobile/15E148 MicroMessenger/8.0.42(0x18002a2d) NetType/WIFI Language/zh_CN

approve on the emulator's consent page, and the page greets you as 小明🐼; /api/me answers
with the user as JSON. Any other browser is let through anonymously (and /api/me answers 401).
No database: the project has no models and no migrations. The options (app id, secret,
emulator address) come from examples/dev_settings.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    # examples/ on the path: the project package (django_app) and dev_settings live there.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app.settings")
    from django.core.management import (
        execute_from_command_line,
    )

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
