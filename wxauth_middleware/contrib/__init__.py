"""Integrations with web frameworks: FastAPI, Starlette, Django, Flask."""

__all__ = ["LOGIN_REQUIRED", "LOGIN_REQUIRED_MESSAGE"]

LOGIN_REQUIRED_MESSAGE = "Log in with WeChat: open this page inside the WeChat app."
# The 401 body of every framework helper, for a route reached with nobody logged in: one
# shape, with the `error` code of the middleware's own 401.
LOGIN_REQUIRED: dict[str, str] = {"error": "login_required", "message": LOGIN_REQUIRED_MESSAGE}
