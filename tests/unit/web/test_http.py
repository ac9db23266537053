"""The h11-based HTTP connection: whole requests out, limits enforced, never a raise."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from portal.web.http import BadRequest, HttpConnection, PeerClosed, Request


def feed(conn: HttpConnection, data: bytes) -> list[object]:
    conn.receive_data(data)
    return list(conn.events_received())


def test_get_and_keep_alive() -> None:
    conn = HttpConnection()
    [request] = feed(conn, b"GET /static/a.css?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert isinstance(request, Request)
    assert (request.method, request.path, request.query) == ("GET", "/static/a.css", "x=1")
    conn.send_response(200, [("Content-Type", "text/css")], b"body")
    out = conn.data_to_send()
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"body")
    [again] = feed(conn, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert isinstance(again, Request) and again.path == "/"


def test_pipelined_requests_wait_for_the_answer() -> None:
    conn = HttpConnection()
    two = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"
    first = feed(conn, two)
    assert [r.path for r in first if isinstance(r, Request)] == ["/a"]
    conn.send_response(200, [], b"")
    second = list(conn.events_received())
    assert [r.path for r in second if isinstance(r, Request)] == ["/b"]


def test_post_body_and_limits() -> None:
    conn = HttpConnection(max_body=10)
    [request] = feed(conn, b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
    assert isinstance(request, Request) and request.body == b"hello"
    big = HttpConnection(max_body=10)
    [error] = feed(big, b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n")
    assert isinstance(error, BadRequest) and error.status == 413
    assert big.data_to_send().startswith(b"HTTP/1.1 413 ") and big.closing


def test_header_limits() -> None:
    many = HttpConnection(max_headers=5)
    head = b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(6))
    [error] = feed(many, head + b"\r\n")
    assert isinstance(error, BadRequest) and error.status == 431
    huge = HttpConnection(max_head=1024)
    [error] = feed(huge, b"GET / HTTP/1.1\r\nX: " + b"a" * 2000)
    assert isinstance(error, BadRequest) and error.status == 431


def test_garbage_is_a_bad_request_and_eof_is_reported() -> None:
    conn = HttpConnection()
    [error] = feed(conn, b"\x16\x03\x01 not http\r\n\r\n")
    assert isinstance(error, BadRequest) and conn.closing
    quiet = HttpConnection()
    assert feed(quiet, b"") == [PeerClosed()]


def test_upgrade_switches_and_returns_trailing_bytes() -> None:
    conn = HttpConnection()
    [request] = feed(conn, b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
                           b"Upgrade: websocket\r\n\r\n\x81\x00")
    assert isinstance(request, Request) and request.upgrade
    trailing = conn.send_switch([("Upgrade", "websocket"), ("Connection", "Upgrade")])
    assert trailing == b"\x81\x00"
    assert conn.data_to_send().startswith(b"HTTP/1.1 101 ")


def test_backlog_is_bounded() -> None:
    conn = HttpConnection(max_head=100, max_body=100)
    feed(conn, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    conn.receive_data(b"x" * 150)
    assert not conn.reading_paused
    conn.receive_data(b"x" * 100)
    assert conn.reading_paused


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_any_bytes_never_raise(chunks: list[bytes]) -> None:
    conn = HttpConnection(max_head=512, max_body=256)
    for chunk in [*chunks, b""]:
        conn.receive_data(chunk)
        for event in conn.events_received():
            if isinstance(event, Request):
                conn.send_response(200, [], b"ok")
        conn.data_to_send()


@settings(max_examples=200)
@given(st.lists(st.sampled_from([b"GET / HTTP/1.1\r\n", b"Host: h\r\n", b"\r\n",
                                 b"Content-Length: 3\r\n", b"abc", b"POST /x HTTP/1.1\r\n",
                                 b"Transfer-Encoding: chunked\r\n", b"3\r\nabc\r\n0\r\n\r\n",
                                 b"Connection: close\r\n"]), max_size=20))
def test_request_shaped_bytes_never_raise(parts: list[bytes]) -> None:
    conn = HttpConnection(max_head=512, max_body=256)
    conn.receive_data(b"".join(parts))
    for _ in range(20):
        requests = [e for e in conn.events_received() if isinstance(e, Request)]
        if not requests:
            break
        conn.send_response(200, [], b"")


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    import ipaddress

    from portal.web.server import forwarded_address

    trusted = [ipaddress.ip_network("127.0.0.1"), ipaddress.ip_network("10.0.0.0/8")]
    assert forwarded_address("127.0.0.1", "203.0.113.9", trusted) == "203.0.113.9"
    # the right-most entry not added by one of our proxies is the client
    assert forwarded_address("127.0.0.1", "1.1.1.1, 203.0.113.9, 10.1.2.3",
                             trusted) == "203.0.113.9"
    assert forwarded_address("198.51.100.7", "203.0.113.9", trusted) == "198.51.100.7"
    assert forwarded_address("127.0.0.1", "junk", trusted) == "127.0.0.1"
    assert forwarded_address("127.0.0.1", None, trusted) == "127.0.0.1"
    assert forwarded_address("127.0.0.1", "10.0.0.1", trusted) == "127.0.0.1"


def test_page_query_in_evennia_forms() -> None:
    from portal.web.server import _page_query

    assert _page_query("abc&page1&chrome") == ("abc", "page1", "chrome")
    assert _page_query("abc&chrome") == ("abc", "", "chrome")
    assert _page_query("false&page1&firefox") == ("", "page1", "firefox")  # no Django session
    assert _page_query("") == ("", "", "")
    assert len(_page_query("a" * 500 + "&b&c")[0]) == 128  # bounded
    assert _page_query("a\x00b&c&d")[0] == ""  # junk is no page id


def test_content_length_with_transfer_encoding_is_refused_and_closes() -> None:
    """RFC 9112 section 6.3: what follows could be a request smuggled past a proxy."""
    conn = HttpConnection()
    events = feed(conn, b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                        b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")
    assert [type(e) for e in events] == [BadRequest]
    assert events[0].status == 400  # type: ignore[attr-defined]
    out = conn.data_to_send()
    assert out.startswith(b"HTTP/1.1 400 ") and out.count(b"HTTP/1.1") == 1
    assert conn.closing
    assert feed(conn, b"GET /more HTTP/1.1\r\nHost: h\r\n\r\n") == []


def test_pipelining_does_not_grow_the_buffers() -> None:
    """Before, each answer handed the whole backlog to h11, whose buffer then grew by a
    backlog per request (a gigabyte in half a minute of pipelined keepalives)."""
    conn = HttpConnection(max_head=1024, max_body=1024)
    one = b"POST /k HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok"
    answered = 0
    for _ in range(300):  # a read arrives between two answers, unless reading paused
        if not conn.reading_paused:
            conn.receive_data(one * 20)
        if any(isinstance(e, Request) for e in conn.events_received()):
            pass
        conn.send_response(200, [], b"")
        answered += 1
        held = len(conn.backlog) + len(conn._h11.trailing_data[0])
        assert held <= 2 * (20 * len(one) + conn.max_backlog), held  # each bounded
    assert answered == 300


def test_origin_and_secret_rules() -> None:
    from portal.web.server import offered_secret, origin_allowed

    assert origin_allowed(None, "h:1", [])  # not a browser
    assert origin_allowed("http://mud.example:4001", "MUD.example:4001", [])  # its own page
    assert not origin_allowed("http://evil.example", "mud.example:4001", [])
    assert not origin_allowed("null", "mud.example", [])
    assert origin_allowed("https://other.example/", "mud.example",
                          ["https://other.example"])
    assert origin_allowed("http://evil.example", "mud.example", ["*"])
    secret = "0123456789abcdef0123456789abcdef"
    assert offered_secret(f"v1.evennia.com, hearth.secret.{secret}") == secret
    assert offered_secret("v1.evennia.com") == ""
    assert offered_secret("hearth.secret.short") == ""
    assert offered_secret("hearth.secret." + "x" * 200) == ""
    assert origin_allowed("https://mud.example:8443", "mud.example", [])  # nginx `Host $host`
    assert origin_allowed("http://[::1]:4001", "[::1]:4001", [])
    assert not origin_allowed("http://mud.example.evil", "mud.example", [])
