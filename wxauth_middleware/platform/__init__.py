"""Third-party platforms (第三方平台): logging users in on behalf of the Official Accounts that
authorized the platform, without their AppSecrets (wechat-protocol.md §14).

- `values.py`: the `Platform` value (its credentials, checked once);
- `crypto.py`: WeChat's message encryption and the strict XML reading of its pushes;
- `store.py`: what a platform keeps (the verify ticket, each authorizer's refresh token and
  revocation), in Redis or in the process;
- `api.py`: the component APIs as sans-I/O flows;
- `service.py`: the platform's credentials and flows (component token, authorizations,
  authorizers' tokens, the code exchange of a login on behalf);
- `events.py`: the endpoint WeChat pushes its encrypted events to;
- `errors.py`: no ticket yet (503), an account that revoked its authorization (403).
"""

from .errors import AuthorizationRevoked, PlatformNotReady
from .values import Platform

__all__ = ["AuthorizationRevoked", "Platform", "PlatformNotReady"]
