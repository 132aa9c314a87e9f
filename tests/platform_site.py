"""The site of the platform's multi-instance test (`test_platform_instances`), as uvicorn
imports it: `python -m uvicorn tests.platform_site:app`. The emulator's URL, Redis and the key
prefix come from `PLATFORM_SITE_*` variables; the account is the emulator's first, of the
test platform. Besides every page answering who is logged in, the admin's authorization:
`/admin/authorize` sends the admin to WeChat's consent page, `/admin/authorized` completes it."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from wxauth_middleware import OfficialAccount, WeChatAuthMiddleware
from wxauth_middleware.emulator import DEFAULT_APP_ID

from .platform_support import PLATFORM
from .support import SECRET_KEY, inner_app

_RETURN = os.environ.get("PLATFORM_SITE_ADMIN_RETURN", "")


async def _authorize(request: Request) -> Response:
    return RedirectResponse(await app.platform_authorize_url(_RETURN), status_code=302)


async def _authorized(request: Request) -> Response:
    app_id = await app.platform_authorized(request.query_params.get("auth_code", ""))
    return JSONResponse({"app_id": app_id})


_site = Starlette(
    routes=[
        Route("/admin/authorize", _authorize),
        Route("/admin/authorized", _authorized),
        *inner_app().routes,
    ]
)
_wechat = os.environ["PLATFORM_SITE_WECHAT_URL"]
app = WeChatAuthMiddleware(
    _site,
    secret_key=SECRET_KEY,
    authorize_url=f"{_wechat}/connect/oauth2/authorize",
    api_base_url=_wechat,
    redis_url=os.environ["PLATFORM_SITE_REDIS_URL"],
    redis_prefix=os.environ["PLATFORM_SITE_REDIS_PREFIX"],
    accounts=[OfficialAccount(app_id=DEFAULT_APP_ID, platform=PLATFORM)],
)
