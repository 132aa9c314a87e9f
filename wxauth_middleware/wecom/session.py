"""A WeCom user in a session's payload (the session cookie's, or a stored session's): a list
tagged with its own version, every field checked when read back."""

from __future__ import annotations

from typing import Any

from ..user import WeComUser

__all__ = ["wecom_payload", "wecom_user"]

# The payload's tag; then corp and agent, the text fields below, the scope and the refusal.
_WECOM_V = "wecom1"
_TEXT = (
    "userid",
    "openid",
    "external_userid",
    "gender",
    "avatar",
    "qr_code",
    "mobile",
    "email",
    "biz_mail",
    "address",
)


def wecom_payload(user: WeComUser, declined: bool) -> list[Any]:
    return [
        _WECOM_V,
        user.corp_id,
        user.agent_id,
        *(getattr(user, name) for name in _TEXT),
        user.scope,
        declined,
    ]


def wecom_user(payload: Any) -> tuple[WeComUser, bool] | None:
    """The WeCom user of a payload, and whether they declined to share their profile; None
    for anything that is not a valid WeCom user's payload."""
    if not isinstance(payload, list) or len(payload) != 5 + len(_TEXT) or payload[0] != _WECOM_V:
        return None
    _, corp_id, agent_id, *text, scope, declined = payload
    if not isinstance(corp_id, str) or not isinstance(agent_id, int) or isinstance(agent_id, bool):
        return None
    if not all(v is None or isinstance(v, str) for v in text) or not isinstance(scope, str):
        return None
    if not isinstance(declined, bool):
        return None
    user = WeComUser(corp_id, agent_id, **dict(zip(_TEXT, text, strict=True)), scope=scope)
    return (user, declined) if user.identity else None
