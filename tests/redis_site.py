"""The site of the multi-instance test (`test_redis_instances`), as uvicorn imports it:
`python -m uvicorn tests.redis_site:app`. Every option comes from `WXAUTH_*` environment
variables (the emulator's account and URLs, the secret key, `WXAUTH_REDIS_URL` and a prefix of
the test's own), so each process the test starts is configured exactly like the others."""

from __future__ import annotations

from wxauth_middleware import WeChatAuthMiddleware

from .support import inner_app

app = WeChatAuthMiddleware.from_env(inner_app())
