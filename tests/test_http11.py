"""The HTTP/1.1 reading both pools share (`wxauth_middleware._http.http11`), sans I/O: hostile
answers fed to it the way a socket delivers them, differentially against h11, and the request
bytes it makes."""

from __future__ import annotations

import itertools
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wxauth_middleware._http.http11 import (
    MAX_BODY,
    MAX_HEAD,
    Answer,
    MalformedAnswer,
    Origin,
    Reader,
    query,
)

from .h11_oracle import H11Reader

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


def read(*pieces: bytes, eof: bool = False) -> Answer | None:
    reader = Reader()
    reader.start()
    answer = None
    for piece in pieces:
        answer = reader.feed(piece)
    if eof and answer is None:
        answer = reader.feed(b"")
    return answer


@pytest.mark.parametrize(
    "reply",
    [
        HEAD + b"Content-Length: +2\r\n\r\n{}",
        HEAD + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        HEAD + b"Content-Length: -1\r\n\r\n",
        CHUNKED + b"0x2\r\n{}\r\n0\r\n\r\n",
        CHUNKED + b"-1\r\n{}\r\n0\r\n\r\n",
        CHUNKED + b"2\r\n{}XX0\r\n\r\n",  # no CRLF after the chunk
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        HEAD + b"Bad Header\r\n\r\n",
        b"garbage\r\n\r\n",
    ],
)
def test_lax_framing_is_refused(reply: bytes) -> None:
    with pytest.raises(MalformedAnswer):
        read(reply, eof=True)


def fed_until_refused(reader: Reader, piece: bytes, most: int) -> tuple[int, str]:
    """Feed `piece` again and again (at most `most` bytes): how many bytes went in before the
    one that was refused, and why."""
    fed = 0
    while fed < most:
        try:
            reader.feed(piece)
        except MalformedAnswer as exc:
            return fed, str(exc)
        fed += len(piece)
    raise AssertionError(f"{fed} bytes taken")


def test_a_giant_chunk_size_fails_before_its_bytes_arrive() -> None:
    reader = Reader()
    reader.start()
    with pytest.raises(MalformedAnswer, match="too large"):
        reader.feed(CHUNKED + b"FFFFFFFFFF\r\n")


def test_chunks_adding_up_past_the_cap_fail_at_the_chunk_that_passes_it() -> None:
    reader = Reader()
    reader.start()
    reader.feed(CHUNKED)
    chunk = b"100000\r\n" + b"x" * 0x100000 + b"\r\n"  # 1 MiB each
    fed, why = fed_until_refused(reader, chunk, 2 * MAX_BODY)
    assert fed == MAX_BODY // 0x100000 * len(chunk)
    assert "too large" in why


@pytest.mark.parametrize(
    "start", [CHUNKED + b"1", HEAD + b"X-Long: ", b"HTTP/1.1 200 "], ids=["size", "head", "status"]
)
def test_a_line_that_never_ends_fails_at_the_head_cap(start: bytes) -> None:
    reader = Reader()
    reader.start()
    reader.feed(start)
    fed, _ = fed_until_refused(reader, b"1" * 1024, 4 * MAX_HEAD)
    assert fed <= MAX_HEAD


def test_a_declared_body_over_the_cap_fails_at_the_head() -> None:
    with pytest.raises(MalformedAnswer, match="too large"):
        read(HEAD + f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode())


def test_a_body_to_the_end_of_the_connection_is_capped() -> None:
    reader = Reader()
    reader.start()
    reader.feed(b"HTTP/1.0 200 OK\r\n\r\n")
    fed, why = fed_until_refused(reader, b"x" * 65536, 2 * MAX_BODY)
    assert MAX_BODY <= fed < MAX_BODY + 65536
    assert "too large" in why


def test_thousands_of_interim_heads_are_skipped_without_recursion() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" * 5000
    answer = read(interim + HEAD + b"Content-Length: 2\r\n\r\n{}")
    assert answer == (200, "OK", "application/json", b"{}")


def test_many_one_byte_chunks_arriving_one_by_one_are_read_whole() -> None:
    # Each piece is read once: 200,000 chunks take a moment, not the quadratic minutes of
    # re-parsing the body from its start on every read.
    reader = Reader()
    reader.start()
    reader.feed(CHUNKED)
    for _ in range(200_000):
        assert reader.feed(b"1\r\nx\r\n") is None
    answer = reader.feed(b"0\r\n\r\n")
    assert answer is not None
    assert answer.body == b"x" * 200_000


@pytest.mark.parametrize(
    ("pieces", "body", "reusable"),
    [
        ((HEAD + b"Content-Length: 2\r\n\r\n{}",), b"{}", True),
        (tuple(bytes([b]) for b in HEAD + b"Content-Length: 2\r\n\r\n{}"), b"{}", True),
        ((CHUNKED + b'4;ext=1\r\n{"a"\r\n3\r\n:1}\r\n0\r\nX-T: 1\r\n\r\n',), b'{"a":1}', True),
        ((HEAD + b"Connection: close\r\nContent-Length: 2\r\n\r\n{}",), b"{}", False),
        ((b"HTTP/1.0 200 OK\r\n\r\nto the end", b""), b"to the end", False),
        ((b"HTTP/1.1 204 No Content\r\n\r\n",), b"", True),
        # Bytes after the answer that nobody asked for: the connection is not reused.
        ((HEAD + b"Content-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n",), b"{}", False),
    ],
)
def test_answers_of_every_framing(pieces: tuple[bytes, ...], body: bytes, reusable: bool) -> None:
    reader = Reader()
    for _ in range(2):  # a second request on the same connection reads the same way
        reader.start()
        answers = [reader.feed(piece) for piece in pieces]
        assert answers[-1] is not None
        assert answers[-1].body == body
        assert all(a is None for a in answers[:-1])
        assert reader.reusable is reusable
        if not reusable:
            break


def test_a_connection_closed_early_is_an_error_and_says_whether_anything_came() -> None:
    reader = Reader()
    reader.start()
    with pytest.raises(MalformedAnswer):
        reader.feed(b"")
    assert not reader.received
    reader = Reader()
    reader.start()
    reader.feed(HEAD + b"Content-Length: 10\r\n\r\nshort")
    with pytest.raises(MalformedAnswer):
        reader.feed(b"")
    assert reader.received


@pytest.mark.parametrize(
    ("base", "origin", "tls", "port", "host_header"),
    [
        ("HTTPS://api.weixin.qq.com", "https://api.weixin.qq.com", True, 443, b"api.weixin.qq.com"),
        ("http://127.0.0.1:8080/base", "http://127.0.0.1:8080", False, 8080, b"127.0.0.1:8080"),
        ("https://[::1]:4443", "https://[::1]:4443", True, 4443, b"[::1]:4443"),
        ("https://h:443", "https://h:443", True, 443, b"h"),
    ],
)
def test_origins_decide_tls_on_the_parsed_scheme(
    base: str, origin: str, tls: bool, port: int, host_header: bytes
) -> None:
    target = Origin.of(base)
    assert (target.origin, target.tls, target.port) == (origin, tls, port)
    request = target.request(base + "/sns/x", (("a", "1 2"),), None)
    assert request.startswith(b"GET ")
    assert b"\r\nHost: " + host_header + b"\r\n" in request
    post = target.request(base + "/cgi-bin/stable_token", (), b'{"a":1}')
    assert post.startswith(b"POST ")
    assert post.endswith(b'Content-Length: 7\r\n\r\n{"a":1}')


@pytest.mark.parametrize(
    "url", ["https://evil.example/sns/x", "https://api.weixin.qq.com.evil/sns/x", "/sns/x"]
)
def test_a_url_outside_the_origin_is_refused_explicitly(url: str) -> None:
    with pytest.raises(ValueError, match="outside api_base_url"):
        Origin.of("https://api.weixin.qq.com").request(url, (("secret", "s"),), None)


@pytest.mark.parametrize("base", ["ftp://x", "https://", "api.weixin.qq.com"])
def test_an_origin_must_be_http_or_https(base: str) -> None:
    with pytest.raises(ValueError, match="not an absolute http"):
        Origin.of(base)


# Differential: the pools' parser against h11 (tests/h11_oracle.py) on generated answers, well
# formed and hostile, delivered in random pieces.
STATUS_LINES = [
    b"HTTP/1.1 200 OK",
    b"HTTP/1.0 200 OK",
    b"HTTP/1.1 200",
    b"HTTP/1.1 200 ",
    b"HTTP/1.1 502 Bad Gateway",
    b"HTTP/1.1 204 No Content",
    b"HTTP/1.1 304 Not Modified",
]
HOSTILE_STATUS_LINES = [
    b"HTTP/1.1 2000 OK",
    b"HTTP/1.1 20 OK",
    b"HTTP/2 200 OK",
    b"HTTP/1.2 200 OK",
    b"HTTP/1.1 200 O\x00K",
    b"HTTP/1.1 200 O\rK",
    b"HTTP/1.1 101 Switching Protocols",
    b"http/1.1 200 OK",
    b" HTTP/1.1 200 OK",
    b"garbage",
    b"",
]
HEADERS = [
    b"Content-Type: application/json",
    b"Content-Type: text/plain; charset=utf-8",
    b"Date: Mon, 07 Dec 2026 03:00:00 GMT",
    b"Connection: keep-alive",
    b"Connection: close",
    b"Connection: Keep-Alive, Close",
    b"X-Empty:",
    b"X-Spaces:   a  b   ",
    b"Server: \x80\xff",
]
HOSTILE_HEADERS = [
    b" folded: no",
    b"\tfolded",
    b"Bad Header: x",
    b"X: a\x00b",
    b": no name",
    b"X-NoColon",
    b"Content-Length: +2",
    b"Content-Length: 0x2",
    b"Content-Length: -1",
    b"Content-Length: 2, 3",
    b"Content-Length: 1e3",
    b"Transfer-Encoding: gzip",
    b"Transfer-Encoding: chunked, gzip",
    b"Transfer-Encoding: chunked",
    b"X-Long: " + b"a" * (MAX_HEAD + 10),
]
INTERIM = [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"]
CHUNK_SIZES_HOSTILE = [b"0x2", b"-1", b" 2", b"+2", b"2 2", b"", b"g", b"1" * 21]


@st.composite
def answers(draw: st.DrawFn, hostile: bool) -> bytes:
    pick = st.sampled_from
    status = draw(pick(STATUS_LINES + (HOSTILE_STATUS_LINES if hostile else [])))
    headers = draw(st.lists(pick(HEADERS + (HOSTILE_HEADERS if hostile else [])), max_size=4))
    body = draw(st.binary(max_size=40))
    framing = draw(pick(["length", "chunked", "eof"]))
    if not hostile and status.startswith(b"HTTP/1.0"):
        framing = draw(pick(["length", "eof"]))  # chunked is HTTP/1.1's (refused in 1.0)
    if (not hostile and b" 204 " in status + b" ") or b" 304 " in status + b" ":
        body = b""  # no body, whatever the framing says
    tail = b""
    if framing == "length":
        declared = len(body) + (draw(st.integers(-3, 3)) if hostile else 0)
        headers.append(b"Content-Length: " + str(max(declared, 0)).encode())
    elif framing == "chunked":
        headers.append(b"Transfer-Encoding: chunked")
        chunks, rest = [], body
        while rest:
            n = draw(st.integers(1, len(rest)))
            size = draw(pick([b"%x" % n, b"%X" % n, b"%x;ext=1" % n, b"%04x" % n]))
            if hostile and draw(st.integers(0, 9)) == 0:
                size = draw(pick(CHUNK_SIZES_HOSTILE))
            chunks.append(size + b"\r\n" + rest[:n] + b"\r\n")
            rest = rest[n:]
        trailers = [b"", b"X-Trailer: 1\r\n"] + ([b"bad trailer\r\n"] if hostile else [])
        trailer = draw(pick(trailers))
        body = b"".join(chunks) + b"0\r\n" + trailer + b"\r\n"
    if hostile:
        tail = draw(pick([b"", b"", b"HTTP/1.1 200 OK\r\n", b"\r\n"]))
    interim = b"".join(draw(st.lists(pick(INTERIM), max_size=2)))
    return interim + status + b"".join(b"\r\n" + h for h in headers) + b"\r\n\r\n" + body + tail


def outcome(reader: Reader | H11Reader, data: bytes, cuts: list[int], eof: bool) -> object:
    """What `reader` makes of `data` arriving in pieces cut at `cuts` (then the connection's
    end, if `eof`): the answer and whether the connection is reusable, "error" or "more"."""
    reader.start()
    edges = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    pieces = [data[a:b] for a, b in itertools.pairwise(edges) if b > a]
    try:
        for piece in [*pieces, *([b""] if eof else [])]:
            answer = reader.feed(piece)
            if answer is not None:
                return answer, reader.reusable
    except MalformedAnswer:
        return "error"
    return "more"


@settings(max_examples=600, deadline=None, database=None)
@given(answers(hostile=True), st.lists(st.integers(0, 10_000), max_size=6), st.booleans())
def test_the_parser_reads_an_answer_only_as_h11_does(
    data: bytes, cuts: list[int], eof: bool
) -> None:
    ours = outcome(Reader(), data, cuts, eof)
    if ours not in ("error", "more"):
        assert outcome(H11Reader(), data, cuts, eof) == ours
    elif eof:  # the whole answer is in: no waiting for more of it
        assert ours == "error"


@settings(max_examples=400, deadline=None, database=None)
@given(answers(hostile=False), st.lists(st.integers(0, 10_000), max_size=6))
def test_well_formed_answers_read_the_same_with_both(data: bytes, cuts: list[int]) -> None:
    ours = outcome(Reader(), data, cuts, eof=True)
    assert ours not in ("error", "more")
    assert ours == outcome(H11Reader(), data, cuts, eof=True)


@pytest.mark.parametrize(
    "reply",
    [
        HEAD + b"Content-Length: +2\r\n\r\n{}",
        CHUNKED + b"0x2\r\n{}\r\n0\r\n\r\n",
        CHUNKED + b"-1\r\n{}\r\n0\r\n\r\n",
        HEAD + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    ],
)
def test_the_corpus_h11_refuses_or_reads_otherwise_is_refused(reply: bytes) -> None:
    assert outcome(Reader(), reply, [], eof=True) == "error"


_QUERY_TEXT = st.text(alphabet="aZ09_.-~ +%&=/?#é中\x00;", max_size=8)


@given(st.lists(st.tuples(_QUERY_TEXT, _QUERY_TEXT), max_size=4))
@settings(max_examples=500, deadline=None)
def test_a_query_is_what_urlencode_makes(params: list[tuple[str, str]]) -> None:
    # The request line's query, quoted only where needed: the same string as urlencode's.
    assert query(tuple(params)) == urlencode(params)
