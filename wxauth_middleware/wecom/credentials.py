"""A WeCom app's credentials, kept like an Official Account's (`credentials.py`): the app's
access_token (per corp AND agent), the corp's jsapi_ticket and the app's agent_config ticket,
each fetched by one caller at a time and, with `redis_url`, shared by every instance under

- `<redis_prefix>wecom:{<corp id>}:<agent id>:token` and `...:agent_ticket` (the app's own),
- `<redis_prefix>wecom:{<corp id>}:ticket` (the corp's, whichever of its apps fetched it);

and the login's calls made with the app's token (getuserinfo, getuserdetail).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from ..config import Config
from ..effects import Flow
from ..errors import ConfigurationError, UpstreamResponseError
from ..scopes import WECOM_SSO_SCOPE
from ..user import WeComUser
from ..wechat.api import CallPolicy, Issued
from ..wechat.credentials import Credentials, _nonce, _Slot, jssdk_signature, signable_url
from .api import WeComAPIError, agent_ticket, corp_ticket, gettoken, getuserdetail, getuserinfo
from .app import WeComApp
from .urls import wecom_scope

__all__ = ["WeComCredentials"]

# WeCom's answers to a token it no longer takes: invalid, expired.
_REJECTED_TOKEN = frozenset({40014, 42001})


class WeComCredentials(Credentials):
    """The credentials of one WeCom app (`app`), and the login's calls made with them."""

    _token_rejected = _REJECTED_TOKEN

    def __init__(
        self,
        config: Config,
        app: WeComApp,
        *,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = _nonce,
    ) -> None:
        self._app = app
        super().__init__(config, clock=clock, nonce=nonce)

    def _slots(self, config: Config) -> None:
        # The keys are the corp's and the app's, not an AppID's.
        app = self._app
        self._app_id = app.label
        corp = f"{config.redis_prefix}wecom:{{{app.corp_id}}}:"
        self._token = _Slot("access_token", f"{corp}{app.agent_id}:token")
        self._ticket = _Slot("jsapi_ticket", f"{corp}ticket")
        self._agent_ticket = _Slot("agent_config ticket", f"{corp}{app.agent_id}:agent_ticket")
        self._force_key = f"{corp}{app.agent_id}:force"

    def __repr__(self) -> str:
        return f"WeComCredentials(app={self._app.label!r})"

    # -- the JS-SDK ------------------------------------------------------------------------

    def agent_ticket(self) -> Flow[str]:
        return (yield from self._get(self._agent_ticket, self._issue_agent_ticket, None))

    def jssdk_config(self, url: str, origin: str | None) -> Flow[dict[str, object]]:
        """`wx.config`'s appId (the corp id), timestamp, nonceStr and signature (the corp's
        ticket), and `agentConfig`'s corpid, agentid, timestamp, nonceStr and signature (the
        app's ticket), for the page at `url`."""
        page = signable_url(url, origin)
        ticket = yield from self.jsapi_ticket()
        own = yield from self.agent_ticket()
        timestamp = int(self._clock())
        nonce, agent_nonce = self._nonce(), self._nonce()
        return {
            "appId": self._app.corp_id,
            "timestamp": timestamp,
            "nonceStr": nonce,
            "signature": jssdk_signature(ticket, nonce, timestamp, page),
            "agentConfig": {
                "corpid": self._app.corp_id,
                "agentid": self._app.agent_id,
                "timestamp": timestamp,
                "nonceStr": agent_nonce,
                "signature": jssdk_signature(own, agent_nonce, timestamp, page),
            },
        }

    def held_jsapi_ticket(self) -> str | None:
        # The endpoint's quick answer is wx.config's alone: a WeCom page needs agentConfig
        # too, which `jssdk_config` signs (from the tickets held, without a call, when fresh).
        return None

    def follows(self, openid: str) -> Flow[bool]:
        raise ConfigurationError("follows() is an Official Account's: a WeCom app has none.")

    # -- the login ---------------------------------------------------------------------------

    def login_user(
        self, code: str, scope: str, trusted: str, policy: CallPolicy
    ) -> Flow[WeComUser]:
        """The member (or non-member) a login `code` of `scope` (the login's) stands for, with
        their details when the code came with a user_ticket (a member's, with
        snsapi_privateinfo); `trusted`: the host the login came back to (what 50001 names).
        The user's scope is the one granted: a non-member has no details to share."""
        app = self._app
        try:
            who = yield from self._with_token(lambda t: getuserinfo(app, t, code, policy))
            detail: dict[str, str | None] = {}
            if who["user_ticket"] and who["userid"]:
                ticket = who["user_ticket"]
                detail = yield from self._with_token(
                    lambda t: getuserdetail(app, t, ticket, policy)
                )
                if detail.get("userid") not in (None, who["userid"]):
                    raise UpstreamResponseError("WeCom getuserdetail answered for another member")
        except WeComAPIError as exc:
            if exc.errcode != 50001:
                raise
            raise WeComAPIError(
                exc.errcode,
                exc.errmsg,
                endpoint=exc.endpoint,
                hint=f"The login came back to {trusted}, which is not the app's trusted "
                f"domain (errcode 50001): set the app's 可信域名 (网页授权及JS-SDK) to exactly "
                f"{trusted} (WeCom compares it whole, port included).",
            ) from None
        user = WeComUser(
            app.corp_id,
            app.agent_id,
            userid=who["userid"],
            openid=None if who["userid"] else who["openid"],
            external_userid=None if who["userid"] else who["external_userid"],
            scope="sso" if scope == WECOM_SSO_SCOPE else wecom_scope(scope),
        )
        if detail:
            fields = {k: v for k, v in detail.items() if k != "userid"}
            user = replace(user, **fields)  # type: ignore[arg-type]
        return user

    # -- asking WeCom ------------------------------------------------------------------------

    def _issue_token(self, rejected: str | None) -> Flow[Issued]:
        # WeCom answers the same token while it is valid: nothing to force.
        return (yield from gettoken(self._app, self._policy()))

    def _issue_ticket(self, rejected: str | None) -> Flow[Issued]:
        return (yield from self._with_token(lambda t: corp_ticket(self._app, t, self._policy())))

    def _issue_agent_ticket(self, rejected: str | None) -> Flow[Issued]:
        return (yield from self._with_token(lambda t: agent_ticket(self._app, t, self._policy())))
