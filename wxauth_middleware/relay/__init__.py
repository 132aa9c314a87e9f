"""A relay: one registered domain logs in the WeChat visitors of many sites (docs/relay.md).

`app.py` is the relay (ASGI and WSGI), `service.py` its paths, `records.py` what it keeps in
Redis, `sites.py` the sites it serves, `links.py` what it and its sites sign, and `client.py` a
site's side (the middleware's `relay_url` options).
"""
