"""Integrations with web frameworks: FastAPI, Starlette, Django, Flask."""
