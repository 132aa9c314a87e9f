"""Tests for wxauth_middleware.useragent: who is "the WeChat browser"."""

from __future__ import annotations

import functools
import gzip
import hashlib
from pathlib import Path

import pytest

from wxauth_middleware.useragent import ClientKind, classify_user_agent, is_wechat_browser

CORPUS_PATH = Path(__file__).parent / "data" / "user-agents.txt.gz"
CORPUS_LINES = 17_816
CORPUS_SHA256 = "f34dbcfed9aab734e0e730fcf683913c89c9e347827cd3ddb16984ec96a59001"

# The nine corpus lines with a MicroMessenger/ token, verbatim, and what each one is.
CORPUS_MICROMESSENGER = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36 NetType/WIFI MicroMessenger/7.0.20.1781(0x6700143B) "
    "WindowsWechat(0x63090c33) XWEB/14315": ClientKind.WECHAT_DESKTOP,
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/132.0.0.0 Safari/537.36 NetType/WIFI MicroMessenger/7.0.20.1781(0x6700143B) "
    "WindowsWechat(0x63090a13) UnifiedPCWindowsWechat(0xf2541510) XWEB/17071": (
        ClientKind.WECHAT_DESKTOP
    ),
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/107.0.0.0 Safari/537.36 NetType/WIFI MicroMessenger/6.8.0(0x16080000) "
    "MacWechat/3.8.7(0x13080710) XWEB/1191": ClientKind.WECHAT_DESKTOP,
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/107.0.0.0 Safari/537.36 NetType/WIFI MicroMessenger/6.8.0(0x16080000) "
    "MacWechat/3.8.10(0x13080a10) XWEB/1227": ClientKind.WECHAT_DESKTOP,
    "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/129.0.6668.101 Safari/537.36 Language/zh ColorScheme/Light wxwork/5.0.3 "
    "(MicroMessenger/6.2) WindowsWechat MailPlugin_Electron WeMail embeddisk "
    "wwmver/3.26.503.665 noMediaCs/false": ClientKind.WECOM,
    "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/129.0.6668.101 Safari/537.36 Language/zh ColorScheme/Light wxwork/5.0.2 "
    "(MicroMessenger/6.2) WindowsWechat MailPlugin_Electron WeMail embeddisk "
    "wwmver/3.26.502.625 noMediaCs/false": ClientKind.WECOM,
    "Mozilla/5.0 (Linux; U; Android 4.3.0; en-gb; HTC Xplorer A310e Build/GRJ90) "
    "AppleWebKit/533.1 (KHTML, like Gecko) Version/4.0 Mobile Safari/533.1 "
    "MicroMessenger/4.5.1.261": ClientKind.WECHAT,
    "Mozilla/5.0 (Linux; U; Android 4.0; zh-cn; K-Touch W719 Build/IMM76I) "
    "AppleWebKit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30 "
    "MicroMessenger/4.5.1.261": ClientKind.WECHAT,
    "Mozilla/5.0 (Linux; U; Android 4.0.4; zh-cn; GT-B9388 Build/IMM76D) "
    "AppleWebKit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30 "
    "MicroMessenger/5.2.380": ClientKind.WECHAT,
}


@functools.cache
def corpus_bytes() -> bytes:
    return gzip.decompress(CORPUS_PATH.read_bytes())


@functools.cache
def corpus() -> tuple[str, ...]:
    text = corpus_bytes().decode("utf-8")
    assert text.endswith("\n")
    # split("\n"), not splitlines(): keep each line exactly as stored (some have trailing blanks).
    return tuple(text[:-1].split("\n"))


# --- the corpus ------------------------------------------------------------------------------


def test_corpus_is_complete_and_unmodified() -> None:
    assert len(corpus()) == CORPUS_LINES
    assert len(set(corpus())) == CORPUS_LINES
    assert hashlib.sha256(corpus_bytes()).hexdigest() == CORPUS_SHA256


def test_corpus_micromessenger_lines_are_the_expected_nine() -> None:
    with_token = [ua for ua in corpus() if "micromessenger/" in ua.lower()]
    assert sorted(with_token) == sorted(CORPUS_MICROMESSENGER)


def test_corpus_no_false_positives() -> None:
    others = [ua for ua in corpus() if ua not in CORPUS_MICROMESSENGER]
    assert len(others) == CORPUS_LINES - 9
    misclassified = [
        (ua, kind) for ua in others if (kind := classify_user_agent(ua)) is not ClientKind.OTHER
    ]
    assert misclassified == []
    assert [ua for ua in others if is_wechat_browser(ua)] == []


def test_corpus_wechat_detected_with_expected_kinds() -> None:
    got = {ua: classify_user_agent(ua) for ua in corpus() if is_wechat_browser(ua)}
    assert len(got) == 7
    expected = {ua: k for ua, k in CORPUS_MICROMESSENGER.items() if k is not ClientKind.WECOM}
    assert got == expected
    kinds = sorted(k.value for k in got.values())
    assert kinds == ["wechat"] * 3 + ["wechat_desktop"] * 4


def test_corpus_wecom_is_not_wechat() -> None:
    wecom = [ua for ua in corpus() if classify_user_agent(ua) is ClientKind.WECOM]
    assert len(wecom) == 2
    for ua in wecom:
        assert "wxwork/" in ua
        assert "MicroMessenger/" in ua
        assert "WindowsWechat" in ua  # the naive desktop test would match too
        assert CORPUS_MICROMESSENGER[ua] is ClientKind.WECOM
        assert not is_wechat_browser(ua)
        assert not classify_user_agent(ua).is_wechat


def test_corpus_is_wechat_browser_agrees_with_classify() -> None:
    for ua in corpus():
        assert is_wechat_browser(ua) is classify_user_agent(ua).is_wechat


# --- hand-written truth table ----------------------------------------------------------------

IOS_WECHAT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.42(0x18002a2d) NetType/WIFI "
    "Language/zh_CN"
)
ANDROID_WECHAT = (
    "Mozilla/5.0 (Linux; Android 13; V2148A Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065 "
    "MMWEBSDK/20231202 MMWEBID/2247 MicroMessenger/8.0.42.2460(0x28002A35) WeChat/arm64 Weixin "
    "NetType/WIFI Language/zh_CN ABI/arm64"
)
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)

WX = ClientKind.WECHAT
DESK = ClientKind.WECHAT_DESKTOP
MINI = ClientKind.MINI_PROGRAM
WECOM = ClientKind.WECOM
OTHER = ClientKind.OTHER

TRUTH_TABLE: list[tuple[str, str | None, ClientKind]] = [
    # Mobile WeChat.
    ("ios-wechat", IOS_WECHAT, WX),
    ("android-wechat", ANDROID_WECHAT, WX),
    (
        "ipad-wechat",
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/15E148 MicroMessenger/8.0.42(0x18002a2d) NetType/WIFI Language/zh_CN",
        WX,
    ),
    (
        "lower-case-micromessenger",
        "Mozilla/5.0 (Phone; OpenHarmony 5.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/114.0.0.0 Safari/537.36 ArkWeb/4.1.6.1 Mobile micromessenger/8.0.1 "
        "NetType/WIFI Language/zh_CN",
        WX,
    ),
    ("upper-case-micromessenger", "MOZILLA/5.0 MICROMESSENGER/8.0.42 NETTYPE/4G", WX),
    ("mixed-case-micromessenger", "Mozilla/5.0 mIcRoMeSsEnGeR/8.0.42", WX),
    ("token-only", "MicroMessenger/8.0.42", WX),
    ("token-at-start", "MicroMessenger/7.0 (iPhone)", WX),
    # Mini Program web-views.
    (
        "ios-mini-program",
        IOS_WECHAT + " miniProgram/wx0123456789abcdef",
        MINI,
    ),
    ("ios-mini-program-bare-token", IOS_WECHAT + " miniProgram", MINI),
    ("android-mini-program", ANDROID_WECHAT + " MiniProgramEnv/android", MINI),
    (
        "windows-mini-program",
        "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/116.0.0.0 Safari/537.36 NetType/WIFI MicroMessenger/7.0.20.1781(0x6700143B) "
        "MiniProgramEnv/Windows WindowsWechat/WMPF WindowsWechat(0x63090a13) "
        "UnifiedPCWindowsWechat(0xf254032b) XWEB/13655",
        MINI,
    ),
    ("mini-program-lower-case", "mozilla/5.0 micromessenger/8.0.1 miniprogramenv/ohos", MINI),
    # Desktop WeChat.
    (
        "windows-wechat",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/81.0.4044.138 Safari/537.36 NetType/WIFI MicroMessenger/7.0.20.1781(0x6700143B) "
        "WindowsWechat(0x6307001e)",
        DESK,
    ),
    (
        "windows-wechat-via-qqbrowser-core",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/53.0.2785.116 Safari/537.36 QBCore/4.0.1326.400 QQBrowser/9.0.2524.400 "
        "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/81.0.4044.138 Safari/537.36 NetType/WIFI MicroMessenger/7.0.20.1781(0x6700143B) "
        "WindowsWechat(0x6307001e)",
        DESK,
    ),
    (
        "unified-pc-windows-wechat",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) NetType/WIFI "
        "MicroMessenger/7.0.20.1781(0x6700143B) UnifiedPCWindowsWechat(0xf2541510) XWEB/17071",
        DESK,
    ),
    (
        "mac-wechat",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) MicroMessenger/6.8.0(0x16080000) MacWechat/3.8.7(0x13080710) "
        "Safari/605.1.15 NetType/WIFI",
        DESK,
    ),
    (
        "unified-pc-mac-wechat",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) MicroMessenger/6.8.0(0x16080000) UnifiedPCMacWechat(0xf2640417)",
        DESK,
    ),
    # WeCom: carries MicroMessenger/ (and on Windows even WindowsWechat) but is not WeChat.
    (
        "wecom-ios",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 16_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 wxwork/4.1.10 MicroMessenger/7.0.1 Language/zh "
        "ColorScheme/Light",
        WECOM,
    ),
    (
        "wecom-android",
        "Mozilla/5.0 (Linux; Android 12; PGJM10 Build/SP1A.210812.016; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/101.0.4951.74 Mobile Safari/537.36 "
        "wxwork/4.1.10 MicroMessenger/7.0.1 NetType/WIFI Language/zh Lang/zh ColorScheme/Light",
        WECOM,
    ),
    (
        "wecom-windows",
        "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/129.0.6668.101 Safari/537.36 Language/zh ColorScheme/Light wxwork/5.0.3 "
        "(MicroMessenger/6.2) WindowsWechat MailPlugin_Electron WeMail embeddisk",
        WECOM,
    ),
    (
        "wecom-mac",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) wxwork/4.1.10 (MicroMessenger/6.2) WeChat/2.0.4 Language/zh "
        "ColorScheme/Light",
        WECOM,
    ),
    ("wecom-mini-program", IOS_WECHAT + " wxwork/4.1.10 miniProgram", WECOM),
    ("wecom-with-mac-wechat-token", "MicroMessenger/6.2 MacWechat/3.8 wxwork/4.1.10", WECOM),
    ("wecom-upper-case", "Mozilla/5.0 WXWORK/4.1.10 MICROMESSENGER/7.0.1", WECOM),
    ("wecom-without-micromessenger", "Mozilla/5.0 (iPhone) wxwork/4.1.10", WECOM),
    # Other apps and browsers.
    (
        "qq-browser",
        "Mozilla/5.0 (Linux; U; Android 13; zh-cn; PGJM10 Build/TP1A.220905.001) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/109.0.5414.86 "
        "MQQBrowser/14.9 Mobile Safari/537.36 COVC/046701",
        OTHER,
    ),
    (
        "qq-app",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 QQ/9.0.20.606 V1_IPH_SQ_9.0.20_1_APP_A Pixel/1170 "
        "Core/WKWebView Device/Apple(iPhone 13) NetType/WIFI QBWebViewType/1 WKType/1",
        OTHER,
    ),
    (
        "alipay",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 ChannelId(17) Ariver/1.1.0 AliApp(AP/10.5.36.6000) "
        "Nebula WK RVKType(0) AlipayDefined(nt:WIFI,ws:390|844|3.0) AlipayClient/10.5.36.6000 "
        "Language/zh-Hans Region/CN NebulaX/1.0.0",
        OTHER,
    ),
    (
        "weibo",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 Weibo (iPhone14,5__weibo__13.8.1__iphone__os16.6)",
        OTHER,
    ),
    (
        "dingtalk",
        "Mozilla/5.0 (Linux; U; Android 12; zh-CN; V2055A Build/SP1A.210812.003) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/69.0.3497.100 UWS/3.22.2.59 "
        "Mobile Safari/537.36 AliApp(DingTalk/7.0.40) com.alibaba.android.rimet/33281770 "
        "Channel/700159 language/zh-CN abi/64 UT4Aplus/0.2.25 colorScheme/light",
        OTHER,
    ),
    ("chrome-windows", CHROME_WINDOWS, OTHER),
    (
        "safari-ios",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        OTHER,
    ),
    (
        "safari-mac",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        OTHER,
    ),
    ("curl", "curl/8.4.0", OTHER),
    ("python-httpx", "python-httpx/0.27.0", OTHER),
    # Near misses: no MicroMessenger/<version> token.
    (
        "micromessenger-without-slash",
        IOS_WECHAT.replace("MicroMessenger/", "MicroMessenger "),
        OTHER,
    ),
    ("micromessenger-bare-word", "MicroMessenger", OTHER),
    ("micromessenger-at-end", "Mozilla/5.0 (iPhone) MicroMessenger", OTHER),
    ("micromessenger-space-before-slash", "Mozilla/5.0 MicroMessenger /8.0.42", OTHER),
    ("micromessenger-fullwidth-slash", "Mozilla/5.0 MicroMessenger\uff0f8.0.42", OTHER),
    ("micromessenger-misspelt", "Mozilla/5.0 MicroMesenger/8.0.42", OTHER),
    ("weixin-and-wechat-words-only", "Mozilla/5.0 (Linux) WeChat/arm64 Weixin NetType/WIFI", OTHER),
    ("mac-wechat-token-without-micromessenger", "Mozilla/5.0 MacWechat/3.8.7", OTHER),
    ("windows-wechat-token-without-micromessenger", "Mozilla/5.0 WindowsWechat(0x63090c33)", OTHER),
    ("mini-program-without-micromessenger", "Mozilla/5.0 (iPhone) miniProgram", OTHER),
    ("wxwork-without-slash", "Mozilla/5.0 wxwork MicroMessenger/7.0.1", WX),
    # Missing, empty and garbage values.
    ("none", None, OTHER),
    ("empty", "", OTHER),
    ("blank", "   ", OTHER),
    ("single-char", "M", OTHER),
    ("slash-only", "/", OTHER),
    ("nul-bytes", "\x00" * 64, OTHER),
    ("control-chars", "\x00\x01\x02\x1b[31m\r\n\t\x7f", OTHER),
    ("control-chars-around-token", "\x00\x1b[0m\tMicroMessenger/8.0.42\r\n\x7f", WX),
    ("token-split-by-nul", "Micro\x00Messenger/8.0.42", OTHER),
    ("unicode-chinese", "微信浏览器 (中文) 测试", OTHER),
    ("unicode-with-token", "微信 MicroMessenger/8.0.42 语言/中文 😀", WX),
    ("emoji", "Mozilla/5.0 😀😀😀 Safari/537.36", OTHER),
    ("long-s-is-not-s", "Mozilla/5.0 microme\u017f\u017fenger/8.0.42", OTHER),
    ("dotted-capital-i-is-not-i", "Mozilla/5.0 M\u0130croMessenger/8.0.42", OTHER),
    ("lone-surrogate", "\ud800 MicroMessenger/8.0.42 \udfff", WX),
    ("lone-surrogate-only", "\ud800\udbff\udfff", OTHER),
]


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [pytest.param(ua, kind, id=name) for name, ua, kind in TRUTH_TABLE],
)
def test_truth_table(user_agent: str | None, expected: ClientKind) -> None:
    assert classify_user_agent(user_agent) is expected
    assert is_wechat_browser(user_agent) is expected.is_wechat
    # A second call (served from the cache) gives the same answer.
    assert classify_user_agent(user_agent) is expected


def test_truth_table_ids_are_unique() -> None:
    names = [name for name, _, _ in TRUTH_TABLE]
    assert len(names) == len(set(names))


# --- enormous inputs -------------------------------------------------------------------------

HUNDRED_KB = 100 * 1024

BIG_INPUTS: list[tuple[str, str, ClientKind]] = [
    ("ascii-filler", "A" * HUNDRED_KB, OTHER),
    ("repeated-chrome-ua", (CHROME_WINDOWS + " ") * (HUNDRED_KB // len(CHROME_WINDOWS)), OTHER),
    ("token-at-end", "x" * HUNDRED_KB + " MicroMessenger/8.0.42", WX),
    ("token-at-start", "MicroMessenger/8.0.42 " + "x" * HUNDRED_KB, WX),
    ("wecom-token-at-end", "MicroMessenger/7.0.1 " + "y" * HUNDRED_KB + " wxwork/4.1", WECOM),
    ("desktop-token-at-end", "MicroMessenger/7.0 " + "a" * HUNDRED_KB + " MacWechat/3.8", DESK),
    ("word-repeated-without-slash", "micromessenger" * (HUNDRED_KB // 14), OTHER),
    ("almost-token-repeated", "MicroMessenge/" * (HUNDRED_KB // 14), OTHER),
    ("token-repeated", "MicroMessenger/" * (HUNDRED_KB // 15), WX),
    ("slashes", "/" * HUNDRED_KB, OTHER),
    ("nul-bytes", "\x00" * HUNDRED_KB, OTHER),
    ("chinese", "微" * HUNDRED_KB, OTHER),
    ("chinese-with-token", "微" * HUNDRED_KB + "MicroMessenger/8.0", WX),
]


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [pytest.param(ua, kind, id=name) for name, ua, kind in BIG_INPUTS],
)
def test_enormous_inputs(user_agent: str, expected: ClientKind) -> None:
    assert len(user_agent) >= HUNDRED_KB - 20
    # The classifier uses plain substring tests (no regex), so its cost is linear in the
    # length; this checks the answers on huge inputs, the benchmarks measure the time.
    assert classify_user_agent(user_agent) is expected
    assert is_wechat_browser(user_agent) is expected.is_wechat


# --- the enum and the cache ------------------------------------------------------------------


def test_client_kind_values_are_stable() -> None:
    assert {k.name: k.value for k in ClientKind} == {
        "WECHAT": "wechat",
        "WECHAT_DESKTOP": "wechat_desktop",
        "MINI_PROGRAM": "mini_program",
        "WECOM": "wecom",
        "OTHER": "other",
    }
    assert ClientKind("wecom") is ClientKind.WECOM


def test_is_wechat_property() -> None:
    assert {k for k in ClientKind if k.is_wechat} == {
        ClientKind.WECHAT,
        ClientKind.WECHAT_DESKTOP,
        ClientKind.MINI_PROGRAM,
    }
    assert ClientKind.WECOM.is_wechat is False
    assert ClientKind.OTHER.is_wechat is False


def test_cache_is_bounded_and_skips_long_strings() -> None:
    from wxauth_middleware import useragent

    cached = useragent._classify_cached
    cached.cache_clear()
    long_ua = IOS_WECHAT + " " + "z" * useragent._CACHE_MAX_LENGTH
    assert classify_user_agent(long_ua) is ClientKind.WECHAT
    assert cached.cache_info().currsize == 0

    assert classify_user_agent(IOS_WECHAT) is ClientKind.WECHAT
    assert classify_user_agent(IOS_WECHAT) is ClientKind.WECHAT
    info = cached.cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 1, 1)

    for i in range(3000):
        assert classify_user_agent(f"{CHROME_WINDOWS} build/{i}") is ClientKind.OTHER
    assert cached.cache_info().currsize == cached.cache_info().maxsize == 1024
    cached.cache_clear()


def test_does_not_mutate_or_require_particular_str_objects() -> None:
    # Equal strings built at run time (as header values are) classify the same.
    ua = "".join(list(IOS_WECHAT))
    assert ua is not IOS_WECHAT
    assert classify_user_agent(ua) is classify_user_agent(IOS_WECHAT) is ClientKind.WECHAT
    assert ua == IOS_WECHAT
