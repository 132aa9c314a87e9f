"""HTTP/1.1 to WeChat's API, private: one sans-I/O parser and request writer (`http11`), an asyncio
pool for the ASGI middleware (`pool`) and a blocking one for the WSGI middleware (`sync_pool`)."""
