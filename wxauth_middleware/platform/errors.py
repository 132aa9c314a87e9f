"""What goes wrong with a third-party platform, as the visitor and the site owner see it."""

from __future__ import annotations

from ..errors import WeChatAuthError

__all__ = ["AuthorizationRevoked", "PlatformNotReady"]


class PlatformNotReady(WeChatAuthError):
    """The platform has no usable component_verify_ticket yet: WeChat pushes one every 10
    minutes to `platform_events_path`. Nothing was asked of WeChat."""

    status = 503
    code = "platform_not_ready"
    title = "Login is not available yet"
    title_zh = "登录暂时还不能使用"
    advice = (
        "This site's WeChat platform has not received its ticket from WeChat yet. "
        "Try again in a few minutes."
    )
    advice_zh = (
        "本网站的微信第三方平台还没有收到微信推送的票据（component_verify_ticket），"
        "请过几分钟再试。"
    )
    hint = (
        "The platform has no component_verify_ticket: WeChat pushes one every 10 minutes to "
        "platform_events_path (the platform's 授权事件接收URL). Check that URL in the Open "
        "Platform's console, that it reaches this site, and the log for refused pushes."
    )


class AuthorizationRevoked(WeChatAuthError):
    """The Official Account revoked (or never completed) its authorization of the platform."""

    status = 403
    code = "authorization_revoked"
    title = "This Official Account no longer allows login here"
    title_zh = "该公众号已取消授权"
    advice = (
        "The Official Account behind this site has withdrawn its authorization, so WeChat "
        "login is stopped here. Please contact the site."
    )
    advice_zh = "该公众号已取消对本网站第三方平台的授权，微信登录已停止。请联系网站。"
    hint = (
        "The account's admin revoked the platform's authorization (an `unauthorized` event), "
        "or its refresh token is gone (61023): send the admin through platform_authorize_url "
        "again."
    )
