"""A development stand-in for WeChat's JS-SDK script, and the check its ``wx.config`` asks for.

The script is served at ``/open/js/jweixin-1.6.0.js`` (WeChat serves the real one from
res.wx.qq.com). ``wx.config`` sends {appId, url, nonceStr, timestamp, signature} to the
emulator's ``/_emulator/jsapi/verify``, which checks the signature against the current
jsapi_ticket, so the ticket never reaches the page. The URL sent is the one WeChat verifies:
on iOS the URL the page was first loaded at (the entry URL, kept when the script loads), on
other systems the current ``location.href``, both without their #fragment.
"""

from __future__ import annotations

import hmac

from .credentials import jsapi_signature
from .golive import GoLive
from .protocol import JSONValue

__all__ = ["JSSDK_PATH", "JSSDK_SCRIPT", "VERIFY_PATH", "verify_config"]

JSSDK_PATH = "/open/js/jweixin-1.6.0.js"
VERIFY_PATH = "/_emulator/jsapi/verify"

_INVALID = "config:invalid signature"
_OFF = GoLive()


def verify_config(
    params: dict[str, str], *, app_id: str, ticket: str | None, go_live: GoLive = _OFF
) -> dict[str, JSONValue]:
    """The verdict on one ``wx.config``: {"ok": true, "errMsg": "config:ok"}, or ok false
    with WeChat's errMsg, the URL that had to be signed (``realAuthUrl``) and why. A page
    outside the account's JS接口安全域名 (when `go_live` has them) fails before its signature
    is looked at, as in WeChat."""
    url = params.get("url", "")
    failure: dict[str, JSONValue] = {"ok": False, "errMsg": _INVALID, "realAuthUrl": url}
    missing = [
        k for k in ("appId", "nonceStr", "timestamp", "signature", "url") if not params.get(k)
    ]
    if missing:
        return {**failure, "reason": f"wx.config lacks {', '.join(missing)}"}
    refused_host = go_live.page_domain_refused(url)
    if refused_host is not None:
        listed = ", ".join(go_live.js_domains or ()) or "none"
        return {
            **failure,
            "errMsg": "config:invalid url domain",
            "reason": f"the page's domain {refused_host} is not one of the Official Account's "
            f"JS接口安全域名 ({listed}): add it in 设置与开发 → 公众号设置 → 功能设置",
        }
    if params["appId"] != app_id:
        return {
            **failure,
            "errMsg": "config:invalid appid",
            "reason": f"appId {params['appId']} is not this emulator's Official Account ({app_id})",
        }
    if ticket is None:
        reason = (
            "no valid jsapi_ticket: the server has not fetched one from "
            "/cgi-bin/ticket/getticket, or it expired"
        )
        return {**failure, "reason": reason}
    expected = jsapi_signature(ticket, params["nonceStr"], params["timestamp"], url)
    if not hmac.compare_digest(expected.encode(), params["signature"].encode("utf-8")):
        reason = (
            "the signature is not sha1('jsapi_ticket=<current ticket>&noncestr="
            f"{params['nonceStr']}&timestamp={params['timestamp']}&url={url}')"
        )
        return {**failure, "reason": reason}
    return {"ok": True, "errMsg": "config:ok"}


JSSDK_SCRIPT = r"""/* jweixin-1.6.0.js stand-in, served by the wxauth_middleware WeChat emulator for
 * development. It is not WeChat's script: wx.config asks the emulator to check the signature,
 * share APIs only call their callbacks, and other APIs fail with "not emulated". */
(function (global) {
  "use strict";
  var script = document.currentScript;
  var base = script ? script.src.replace(/\/open\/js\/jweixin-1\.6\.0\.js([?#].*)?$/, "") : "";
  function withoutFragment(href) {
    var at = href.indexOf("#");
    return at < 0 ? href : href.slice(0, at);
  }
  // WeChat on iOS verifies against the URL the page was first loaded at, whatever pushState did.
  var entryUrl = withoutFragment(location.href);
  var iOS = /iPhone|iPad|iPod/i.test(navigator.userAgent);
  var state = "new"; // new, verifying, ready, failed
  var apis = [];
  var debug = false;
  var failure = null;
  var readyCallbacks = [];
  var errorCallbacks = [];

  function run(callback, arg) {
    try { callback(arg); } catch (e) { setTimeout(function () { throw e; }); }
  }
  function settle(ok, result) {
    state = ok ? "ready" : "failed";
    failure = ok ? null : { errMsg: result.errMsg };
    var queue = ok ? readyCallbacks : errorCallbacks;
    readyCallbacks = [];
    errorCallbacks = [];
    queue.forEach(function (callback) { run(callback, failure || undefined); });
  }
  function answer(options, name, ok, extra) {
    var result = { errMsg: name + (ok ? ":ok" : ":" + extra) };
    options = options || {};
    if (ok && options.success) run(options.success, result);
    if (!ok && options.fail) run(options.fail, result);
    if (options.complete) run(options.complete, result);
  }
  function share(name) {
    return function (options) {
      if (state !== "ready" || apis.indexOf(name) < 0) {
        answer(options, name, false, "permission denied");
        return;
      }
      if (debug) console.log("wx." + name, options);
      answer(options, name, true);
    };
  }
  function notEmulated(name) {
    return function (options) { answer(options, name, false, "fail, not emulated"); };
  }
  var shareApis = ["updateAppMessageShareData", "updateTimelineShareData",
    "onMenuShareAppMessage", "onMenuShareTimeline"];
  var wx = {
    config: function (options) {
      options = options || {};
      apis = Array.isArray(options.jsApiList) ? options.jsApiList.slice() : [];
      debug = !!options.debug;
      state = "verifying";
      var url = iOS ? entryUrl : withoutFragment(location.href);
      var query = new URLSearchParams({
        appId: String(options.appId || ""), timestamp: String(options.timestamp || ""),
        nonceStr: String(options.nonceStr || ""), signature: String(options.signature || ""),
        url: url
      });
      fetch(base + "/_emulator/jsapi/verify?" + query, { credentials: "omit" })
        .then(function (response) { return response.json(); })
        .then(function (verdict) {
          if (verdict.ok) {
            if (debug) console.log("wx.config: config:ok, realAuthUrl " + url);
          } else if (verdict.errMsg === "config:invalid signature") {
            console.error("wx.config: " + verdict.errMsg + ". WeChat verifies the signature " +
              "against realAuthUrl " + verdict.realAuthUrl + " (" + verdict.reason + ")");
          } else {
            console.error("wx.config: " + verdict.errMsg + ": " + verdict.reason);
          }
          settle(verdict.ok, verdict);
        }, function (error) {
          console.error("wx.config: the WeChat emulator at " + base + " did not answer: " + error);
          settle(false, { errMsg: "config:fail" });
        });
    },
    ready: function (callback) {
      if (state === "ready") run(callback);
      else readyCallbacks.push(callback);
    },
    error: function (callback) {
      if (state === "failed") run(callback, failure);
      else errorCallbacks.push(callback);
    },
    checkJsApi: function (options) {
      var checkResult = {};
      ((options && options.jsApiList) || []).forEach(function (name) {
        checkResult[name] = shareApis.indexOf(name) >= 0;
      });
      if (options && options.success) {
        run(options.success, { checkResult: checkResult, errMsg: "checkJsApi:ok" });
      }
    }
  };
  shareApis.forEach(function (name) { wx[name] = share(name); });
  ["chooseImage", "previewImage", "uploadImage", "downloadImage", "getLocation", "openLocation",
    "scanQRCode", "getNetworkType", "closeWindow", "hideMenuItems", "showMenuItems",
    "hideOptionMenu", "showOptionMenu", "chooseWXPay"].forEach(function (name) {
    wx[name] = notEmulated(name);
  });
  global.wx = global.jWeixin = wx;
})(window);
"""
