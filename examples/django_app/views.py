"""The example's views: the user comes from the WeChat middleware wrapped around Django."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.shortcuts import render

from wxauth_middleware import WeChatUser
from wxauth_middleware.contrib.django import get_wechat_user, login_required


def home(request: HttpRequest) -> Any:
    # The template reads request.wechat_user (set by WeChatUserMiddleware); Django's template
    # autoescaping escapes the nickname, which is user input.
    return render(request, "home.html")


@login_required  # anonymous callers get 401 {"error": "login_required", ...}
def me(request: HttpRequest) -> Any:
    user = get_wechat_user(request)  # WSGIRequest or ASGIRequest alike
    # login_required let only logged-in users in, and this site logs in with WeChat only.
    assert isinstance(user, WeChatUser)
    return JsonResponse(
        {
            "openid": user.openid,
            "unionid": user.unionid,
            "nickname": user.nickname,
            "scope": user.scope,
        },
        json_dumps_params={"ensure_ascii": False},
    )
