"""WeCom (企业微信): a company's staff logging in to its own web apps, in WeCom's browser
and on the desktop, with the app's credentials kept per corp and agent."""

from .app import WeComApp

__all__ = ["WeComApp"]
