"""A minimal Django project behind the WeChat login: no database, a page and a JSON endpoint.

Run it from the repository root, against the local WeChat emulator:

    python -m pip install -e ".[examples]"      # once: uvicorn, FastAPI, Flask, Django
    python -m wxauth_middleware.emulator                            # terminal 1: "WeChat"
    python examples/django_app/manage.py runserver 127.0.0.1:8000   # terminal 2: this site

manage.py's docstring says more; wsgi.py and asgi.py show the one-line wrapping.
"""
