"""The demo's JS-SDK page (/share): WeChat's share card set up with the middleware's one script
tag (`jssdk_path + ".js"`), which loads the emulator's stand-in of WeChat's JS-SDK and signs
the page with the Official Account's jsapi_ticket."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.responses import Response as StarletteResponse

__all__ = ["share"]

_PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>分享 · Share</title>
<script src="/wxauth/jssdk.js"
  data-js-api-list="updateAppMessageShareData updateTimelineShareData"></script>
<style>
body{margin:0;font:16px/1.5 -apple-system,"PingFang SC","Microsoft YaHei",system-ui,sans-serif;
background:#ededed;color:#191919}
main{max-width:520px;margin:0 auto;padding:16px}
.card{background:#fff;border-radius:8px;padding:20px}
h1{font-size:20px;margin:0 0 12px}
.muted{color:#7f7f7f;font-size:14px}
button{font:inherit;width:100%;padding:12px;border:0;border-radius:6px;background:#07c160;
color:#fff;font-weight:600;margin:12px 0}
button:disabled{background:#a6dfbd}
a{color:#576b95}
</style>
</head>
<body>
<main>
<div class="card">
<h1>分享给朋友 · Share with a friend</h1>
<p id="status" class="muted">正在配置微信 JS-SDK… · Configuring WeChat's JS-SDK…</p>
<button id="share" type="button" disabled>设置分享卡片 · Set the share card</button>
<p id="result" role="status"></p>
<p class="muted">这一页只用了一个 &lt;script&gt; 标签：中间件负责签名，iOS 的入口 URL 规则也已处理。
One &lt;script&gt; tag: the middleware signs the page, iOS's entry-URL rule included.</p>
<p><a href="/">← 首页 · Home</a></p>
</div>
</main>
<script>
(function () {
  var status = document.getElementById("status");
  var button = document.getElementById("share");
  var result = document.getElementById("result");
  wx.ready(function () {
    status.textContent = "微信 JS-SDK 已就绪 · WeChat's JS-SDK is ready (config:ok)";
    button.disabled = false;
  });
  wx.error(function (res) {
    status.textContent = "wx.config 失败 · failed: " + res.errMsg;
  });
  button.addEventListener("click", function () {
    wx.updateAppMessageShareData({
      title: "wxauth-middleware 演示 · demo",
      desc: "用微信登录的 ASGI/WSGI 中间件 · Log in with WeChat",
      link: location.href.split("#")[0],
      imgUrl: location.origin + "/favicon.ico",
      success: function () {
        result.textContent =
          "分享卡片已设置，点右上角「…」发送 · The share card is set: send it from the … menu";
      },
      fail: function (res) {
        result.textContent = "设置失败 · Failed: " + res.errMsg;
      }
    });
  });
})();
</script>
</body>
</html>
"""


async def share(request: Request) -> StarletteResponse:
    return HTMLResponse(_PAGE, headers={"cache-control": "no-store"})
