"""The WeChat users the emulator can log in as.

Each persona exercises one thing a real user base throws at a relying party: emoji and mixed
scripts in nicknames, a missing avatar, an account without a unionid, a snapshot-mode virtual
user, and a nickname with a raw control character.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

__all__ = ["DEFAULT_PERSONAS", "Persona"]

# Keys travel in a cookie and in form fields: keep them to characters that need no quoting.
_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _wechat_id(seed: str) -> str:
    # Real openids/unionids are 28 characters of [A-Za-z0-9_-] starting with "o";
    # hashing the seed makes them look alike and stay stable across restarts.
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode("ascii")[:27]


@dataclass(frozen=True)
class Persona:
    """One emulated WeChat user.

    Since October 2021 WeChat answers 0 / "" for sex and region for everyone; the fields exist
    so a custom persona can reproduce older answers. `follows` says whether the user follows
    the Official Account (``subscribe`` in /cgi-bin/user/info).
    """

    key: str
    nickname: str
    headimgurl: str = ""
    has_unionid: bool = False
    snapshot: bool = False
    sex: int = 0
    province: str = ""
    city: str = ""
    country: str = ""
    follows: bool = False

    def __post_init__(self) -> None:
        if not _KEY_RE.fullmatch(self.key):
            raise ValueError(
                f"Persona key {self.key!r} must be 1-32 characters of A-Z, a-z, 0-9, '_' or '-'"
            )

    def openid_for(self, app_id: str) -> str:
        """This user's openid for one Official Account: WeChat gives each appid its own."""
        return _wechat_id(f"openid:{app_id}:{self.key}")

    @property
    def unionid(self) -> str | None:
        """The same for every appid of one Open-Platform account; None without a binding.

        Snapshot-mode users get a virtual unionid, one shared by all of them (as reported of
        real WeChat): linking accounts by it merges strangers.
        """
        if not self.has_unionid:
            return None
        return _wechat_id("unionid:snapshot-virtual" if self.snapshot else f"unionid:{self.key}")


DEFAULT_PERSONAS: tuple[Persona, ...] = (
    Persona(
        key="xiaoming",
        nickname="小明🐼",
        headimgurl=(
            "https://thirdwx.qlogo.cn/mmopen/vi_32/"
            "Q0j4TwGTfTKbx6PzRnY2ZW1hdG9yWGlhb21pbmdBdmF0YXJRMGo0VHdHVGZU/132"
        ),
        has_unionid=True,
        follows=True,
    ),
    # WeChat sends "" for users who never set a profile photo.
    Persona(key="lily", nickname="Lily 🌸 李", headimgurl="", has_unionid=False),
    # Snapshot-mode users are virtual: WeChat calls them all 微信用户 with the default avatar,
    # and its 2022 announcement gives them a (virtual) unionid too.
    Persona(
        key="snapshot",
        nickname="微信用户",
        headimgurl=(
            "https://thirdwx.qlogo.cn/mmopen/vi_32/"
            "POgEwh4mIHO4nibH0KlMECNjjGxQUq24ZEaGT4poC6icRiccVGKSyXwibcPq4BWmiaIGuG1icwxaQX6grC9VemZoJ8rg/132"
        ),
        has_unionid=True,
        snapshot=True,
    ),
    # The raw BEL character reaches the client unescaped, as WeChat sends such nicknames.
    Persona(
        key="ctrl",
        nickname="控制\x07字符",
        headimgurl=(
            "https://thirdwx.qlogo.cn/mmopen/vi_32/"
            "DYAIOgq83eoCtrlCharNicknamePersonaAvatarPlaceholderQ3RybA/0"
        ),
        has_unionid=True,
        follows=True,
    ),
)
