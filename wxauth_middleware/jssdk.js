/* wxauth-middleware: WeChat's JS-SDK, configured for this page.
 *
 *   <script src="/wxauth/jssdk.js" data-js-api-list="updateAppMessageShareData"></script>
 *   <script>wx.ready(function () { wx.updateAppMessageShareData({...}); });</script>
 *
 * Loads WeChat's JS-SDK, asks the site for the signed configuration of the URL WeChat will
 * verify, and calls wx.config. WeChat on iOS verifies the URL the page was first loaded at (the
 * entry URL), whatever pushState did since; other systems verify the current URL. After each
 * route change (pushState, replaceState, popstate to another URL) it configures again.
 * Attributes: data-js-api-list (names, comma- or space-separated), data-open-tag-list,
 * data-debug. Events on document: "wxauth:ready" and "wxauth:error" (detail: {url, errMsg}).
 * When the page cannot be configured at all (the site could not sign it, or WeChat's script
 * did not load), the page's wx.error callbacks are called as for a refused wx.config, with
 * errMsg "config:fail: ..." and the site's explanation in `detail`.
 */
(function (global) {
  "use strict";
  var SIGN_PATH = __WXAUTH_SIGN_PATH__;
  var SDK_URL = __WXAUTH_SDK_URL__;
  var DEFAULT_APIS = ["updateAppMessageShareData", "updateTimelineShareData"];
  var me = document.currentScript;

  function attr(name) {
    return me ? me.getAttribute(name) : null;
  }
  function names(value, fallback) {
    if (value === null) return fallback;
    return value.split(/[\s,]+/).filter(Boolean);
  }
  function withoutFragment(href) {
    var at = href.indexOf("#");
    return at < 0 ? href : href.slice(0, at);
  }

  var apis = names(attr("data-js-api-list"), DEFAULT_APIS);
  var openTags = names(attr("data-open-tag-list"), []);
  var debug = attr("data-debug") !== null;
  // Recorded before the page's router can change it.
  var entryUrl = withoutFragment(location.href);
  var iOS = /iPhone|iPad|iPod/i.test(navigator.userAgent);
  var configuredAt = null; // the page's URL when it was last configured
  var sequence = 0;

  function verifiedUrl() {
    return iOS ? entryUrl : withoutFragment(location.href);
  }
  function announce(kind, detail) {
    document.dispatchEvent(new CustomEvent("wxauth:" + kind, { detail: detail }));
  }
  function fail(url, message) {
    console.error("wxauth: wx.config for " + url + " failed: " + message);
    announce("error", { url: url, errMsg: message });
  }

  // The page's wx.error callbacks, told of the failures that never reach wx.config.
  var errorCallbacks = [];
  var unconfigured = null; // why the page could not be configured, while it could not

  function failBeforeConfig(url, reason, extra) {
    var result = { errMsg: "config:fail: " + reason };
    Object.keys(extra || {}).forEach(function (key) { result[key] = extra[key]; });
    unconfigured = result;
    fail(url, result.errMsg);
    errorCallbacks.forEach(function (callback) { notify(callback, result); });
  }
  function notify(callback, result) {
    try { callback(result); } catch (e) { setTimeout(function () { throw e; }); }
  }

  function configure() {
    var here = withoutFragment(location.href);
    if (here === configuredAt) return; // a fragment change, or the same URL again
    configuredAt = here;
    var url = verifiedUrl();
    var mine = ++sequence;
    fetch(SIGN_PATH + "?url=" + encodeURIComponent(url), {
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) {
            var error = new Error(body.detail || body.message || "HTTP " + response.status);
            error.body = body;
            error.status = response.status;
            throw error;
          }
          return body;
        }, function () {
          var error = new Error("HTTP " + response.status + ", not JSON");
          error.status = response.status;
          throw error;
        });
      })
      .then(function (signed) {
        if (mine !== sequence) return; // a later route change asked again
        unconfigured = null;
        var wx = global.wx;
        wx.config({
          debug: debug,
          appId: signed.appId,
          timestamp: signed.timestamp,
          nonceStr: signed.nonceStr,
          signature: signed.signature,
          jsApiList: apis,
          openTagList: openTags
        });
        wx.ready(function () {
          if (mine === sequence) announce("ready", { url: url, errMsg: "config:ok" });
        });
        wx.error(function (result) {
          if (mine === sequence) fail(url, (result && result.errMsg) || "config:fail");
        });
      })
      .catch(function (error) {
        if (mine !== sequence) return;
        configuredAt = null; // the next route change tries again
        var body = error.body || {};
        var code = [error.status, body.error, body.errcode].filter(Boolean).join(", ");
        failBeforeConfig(
          url,
          "the site could not sign this page for WeChat's JS-SDK (" + SIGN_PATH +
            (code ? " answered " + code : " did not answer") + "): " + error.message,
          { detail: body.detail || "", error: body.error || "", errcode: body.errcode }
        );
      });
  }

  function watchRoutes() {
    ["pushState", "replaceState"].forEach(function (name) {
      var original = history[name];
      history[name] = function () {
        var result = original.apply(this, arguments);
        setTimeout(configure, 0);
        return result;
      };
    });
    global.addEventListener("popstate", configure);
  }

  // Until WeChat's script has loaded, the page's wx.ready and wx.error calls are queued.
  var queued = [];

  // The page's wx.error callbacks also hear of the failures that never reach wx.config.
  function keepErrorCallbacks(sdkError) {
    global.wx.error = function (callback) {
      errorCallbacks.push(callback);
      if (unconfigured) notify(callback, unconfigured);
      return sdkError.apply(this, arguments);
    };
  }

  function start() {
    keepErrorCallbacks(global.wx.error);
    queued.forEach(function (call) {
      global.wx[call[0]](call[1]);
    });
    queued = [];
    watchRoutes();
    configure();
  }

  if (global.wx && typeof global.wx.config === "function") {
    start(); // the page loaded WeChat's script itself
    return;
  }
  global.wx = global.jWeixin = {
    ready: function (callback) {
      queued.push(["ready", callback]);
    },
    error: function (callback) {
      queued.push(["error", callback]);
    }
  };
  var sdk = document.createElement("script");
  sdk.src = SDK_URL;
  sdk.onload = start;
  sdk.onerror = function () {
    keepErrorCallbacks(function () {});
    queued.forEach(function (call) {
      if (call[0] === "error") global.wx.error(call[1]);
    });
    queued = [];
    failBeforeConfig(verifiedUrl(), "WeChat's JS-SDK could not be loaded from " + SDK_URL);
  };
  document.head.appendChild(sdk);
})(window);
