"""Server-side storage in Redis: the store's key layout and payloads as pure flows (`store`), and
`redis_url`'s clients and command runner (`redis_client`)."""
