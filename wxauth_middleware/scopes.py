"""WeChat's authorization scopes, named once."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["PROFILE_SCOPES", "QRCONNECT_SCOPE", "SCOPES", "WECOM_SSO_SCOPE", "Scope"]

# The Official Account's web authorization scopes: silent (openid only), or the profile.
Scope = Literal["snsapi_base", "snsapi_userinfo"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
# The scope of WeChat's website QR-code login (desktop browsers).
QRCONNECT_SCOPE = "snsapi_login"
# A WeCom desktop login's (wwlogin/sso/login), in a login in progress.
WECOM_SSO_SCOPE = "wecom_sso"
# Scopes of a user whose profile was shared: WeChat's (their token may call /sns/userinfo),
# and WeCom's snsapi_privateinfo.
PROFILE_SCOPES = frozenset({"snsapi_userinfo", QRCONNECT_SCOPE, "snsapi_privateinfo"})
