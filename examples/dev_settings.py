"""The middleware options every example uses: a local WeChat emulator, by default.

Start the emulator first (it plays WeChat on http://127.0.0.1:8400):

    python -m wxauth_middleware.emulator

Another emulator address: WECHAT_EMULATOR_URL. The real WeChat: set EXAMPLES_REAL_WECHAT=1 with
WXAUTH_APP_ID, WXAUTH_APP_SECRET, WXAUTH_SECRET_KEY and WXAUTH_PUBLIC_URL.
"""

from __future__ import annotations

import os
from typing import Any

from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET

EMULATOR_URL = os.environ.get("WECHAT_EMULATOR_URL", "http://127.0.0.1:8400")

WXAUTH_OPTIONS: dict[str, Any] = {
    "app_id": os.environ.get("WXAUTH_APP_ID", DEFAULT_APP_ID),
    "app_secret": os.environ.get("WXAUTH_APP_SECRET", DEFAULT_APP_SECRET),
    # Development only: production keys come from the environment, never from the code.
    "secret_key": os.environ.get("WXAUTH_SECRET_KEY", "example-only-signing-key-change-me"),
    "scope": "snsapi_userinfo",
    "public_url": os.environ.get("WXAUTH_PUBLIC_URL") or None,
}
if not os.environ.get("EXAMPLES_REAL_WECHAT"):
    WXAUTH_OPTIONS["authorize_url"] = f"{EMULATOR_URL}/connect/oauth2/authorize"
    WXAUTH_OPTIONS["api_base_url"] = EMULATOR_URL
