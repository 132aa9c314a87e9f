"""The log lines of a login's end: who logged in, or why not (never a code or a token)."""

from __future__ import annotations

import logging
import time

from ..errors import WeChatAPIError, WeChatAuthError
from ..user import User, WeChatUser

__all__ = ["log_failure", "log_login"]

logger = logging.getLogger("wxauth_middleware")


def log_login(user: User, started: float) -> None:
    duration_ms = int((time.monotonic() - started) * 1000)
    if isinstance(user, WeChatUser):
        logger.info(
            "wxauth login ok app_id=%s openid=%s unionid=%s scope=%s snapshot=%d duration_ms=%d",
            user.app_id,
            user.openid,
            user.unionid,
            user.scope,
            user.is_snapshot_user,
            duration_ms,
        )
    else:
        logger.info(
            "wxauth login ok wecom=%s/%d userid=%s openid=%s scope=%s duration_ms=%d",
            user.corp_id,
            user.agent_id,
            user.userid,
            user.openid,
            user.scope,
            duration_ms,
        )


def log_failure(error: WeChatAuthError, started: float) -> None:
    duration_ms = int((time.monotonic() - started) * 1000)
    if isinstance(error, WeChatAPIError):
        logger.warning(
            "wxauth login failed error=%s endpoint=%s errcode=%d rid=%s duration_ms=%d: %s",
            error.code,
            error.endpoint,
            error.errcode,
            error.rid,
            duration_ms,
            error.hint,
        )
    else:
        logger.warning(
            "wxauth login failed error=%s reason=%s duration_ms=%d",
            error.code,
            error.message,
            duration_ms,
        )
