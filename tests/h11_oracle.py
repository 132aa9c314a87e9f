"""h11 reading an answer the way `wxauth_middleware.http11.Reader` does, with the same caps: the
oracle tests/test_http11.py holds the pools' own parser to (it must never accept what h11
refuses, nor read an answer otherwise)."""

from __future__ import annotations

import h11

from wxauth_middleware.http11 import MAX_BODY, MAX_HEAD, Answer, MalformedAnswer

_SENT = h11.Request(method="GET", target="/", headers=[("Host", "wechat")])


class H11Reader:
    """The `Reader` interface (start, feed, reusable) on h11."""

    def __init__(self) -> None:
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self._head: h11.Response | None = None
        self._body: list[bytes] = []
        self._size = 0

    def start(self) -> None:
        if self._h11.our_state is h11.DONE:
            self._h11.start_next_cycle()
        self._h11.send(_SENT)
        self._h11.send(h11.EndOfMessage())
        self._head, self._body, self._size = None, [], 0

    @property
    def reusable(self) -> bool:
        conn = self._h11
        after, closed = conn.trailing_data
        done = conn.our_state is h11.DONE and conn.their_state is h11.DONE
        return done and not after and not closed

    def feed(self, data: bytes) -> Answer | None:
        conn = self._h11
        try:
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if isinstance(event, h11.Data):
                    self._size += len(event.data)
                    if self._size > MAX_BODY:
                        raise MalformedAnswer("a response body too large")
                    self._body.append(event.data)
                elif isinstance(event, h11.Response):
                    self._head = event
                    for name, value in event.headers:
                        if name == b"content-length" and int(value) > MAX_BODY:
                            raise MalformedAnswer("a response body too large")
                elif isinstance(event, h11.EndOfMessage):
                    head = self._head
                    assert head is not None
                    types = [v for n, v in head.headers if n == b"content-type"]
                    return Answer(
                        head.status_code,
                        head.reason.decode("latin-1"),
                        b", ".join(types).decode("latin-1"),
                        b"".join(self._body),
                    )
                elif event is h11.NEED_DATA:
                    if data == b"":
                        raise MalformedAnswer("the connection closed mid-answer")
                    return None
                elif event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                    raise MalformedAnswer("the connection closed mid-answer")
        except h11.RemoteProtocolError as exc:
            raise MalformedAnswer(str(exc)) from None
