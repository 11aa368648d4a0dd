"""Router, request parsing and the JSON error shape."""

from __future__ import annotations

import json

import pytest

from bookmeta import (
    CircuitOpen,
    InvalidInput,
    PayloadTooLarge,
    RateLimited,
    Request,
    Response,
    Router,
    UpstreamError,
    error_response,
    json_response,
    response_for_error,
)


def req(path: str, method: str = "GET", body: bytes = b"") -> Request:
    return Request(method, f"https://w.test{path}", {}, body)


async def _author(request: Request, name: str) -> Response:
    return json_response({"name": name, "q": request.query})


async def _boom(request: Request) -> Response:
    raise InvalidInput("page", "page must be >= 1")


@pytest.fixture
def router() -> Router:
    r = Router()
    r.add("GET", "/author/{name}", _author)
    r.add("POST", "/books", _author)
    r.add("GET", "/bad", _boom)
    return r


async def test_path_params_are_unquoted_per_segment(router: Router) -> None:
    """An encoded slash stays inside the parameter; it never adds a segment."""
    resp = await router.dispatch(req("/author/a%2F..%2Fb?page=2&page=3"))
    assert resp.status == 200
    assert resp.json() == {"name": "a/../b", "q": {"page": "2"}}


async def test_unknown_path_is_404_json(router: Router) -> None:
    """Unknown paths answer a JSON 404."""
    resp = await router.dispatch(req("/nope"))
    assert resp.status == 404
    assert resp.json()["error"]["code"] == "not_found"


async def test_wrong_method_is_405_with_allow(router: Router) -> None:
    """A known path with the wrong method answers 405 and lists the allowed methods."""
    resp = await router.dispatch(req("/books"))
    assert resp.status == 405
    assert resp.headers["allow"] == "POST"


async def test_invalid_input_becomes_400_naming_the_param(router: Router) -> None:
    """InvalidInput raised by a handler is a 400 naming the parameter."""
    resp = await router.dispatch(req("/bad"))
    assert resp.status == 400
    assert resp.json()["error"] == {
        "code": "invalid_input",
        "message": "page: page must be >= 1",
        "param": "page",
    }


async def test_undecodable_path_parameter_is_400(router: Router) -> None:
    """Invalid UTF-8 in a path parameter is a 400, not a crash."""
    resp = await router.dispatch(req("/author/%ff%fe"))
    assert resp.status == 400


def test_undecodable_query_is_invalid_input() -> None:
    """Invalid UTF-8 in the query string raises InvalidInput."""
    with pytest.raises(InvalidInput):
        _ = req("/x?q=%ff").query


@pytest.mark.parametrize(
    "body",
    [b"not json", b"\xff\xfe", b"[" * 100 + b"]" * 100, b"[" * 5000],
    ids=["text", "binary", "deep", "unbalanced"],
)
async def test_bad_json_bodies_are_invalid_input(body: bytes) -> None:
    """Non-JSON, non-UTF-8 and deeply nested bodies raise InvalidInput."""
    with pytest.raises(InvalidInput):
        await req("/x", "POST", body).read_json(1024 * 1024)


class CountingStream:
    """A BodyStream that records every read and the limit it was given."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.limits: list[int] = []

    async def read(self, max_bytes: int) -> bytes:
        self.limits.append(max_bytes)
        if len(self.data) > max_bytes:
            raise PayloadTooLarge(max_bytes)
        return self.data


def streamed(body: bytes, headers: dict[str, str] | None = None) -> tuple[Request, CountingStream]:
    stream = CountingStream(body)
    return Request("POST", "https://w.test/x", headers or {}, stream=stream), stream


async def test_read_body_streams_with_the_limit() -> None:
    """A streamed body is read once, with the caller's limit."""
    request, stream = streamed(b'{"a": 1}')
    assert await request.read_json(100) == {"a": 1}
    assert stream.limits == [100]


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    """Content-Length past the limit raises PayloadTooLarge without touching the stream."""
    request, stream = streamed(b"x" * 10, {"content-length": "5000"})
    with pytest.raises(PayloadTooLarge) as exc:
        await request.read_body(100)
    assert (exc.value.max_bytes, exc.value.declared, exc.value.param) == (100, 5000, "body")
    assert stream.limits == []


@pytest.mark.parametrize("header", ["", "abc", "-1", "\u0661\u0662"], ids=repr)
async def test_a_missing_or_odd_length_leaves_the_count_to_the_stream(header: str) -> None:
    """Without a usable Content-Length the stream's running count enforces the limit."""
    request, stream = streamed(b"x" * 500, {"content-length": header} if header else {})
    assert request.content_length is None
    with pytest.raises(PayloadTooLarge):
        await request.read_body(100)
    assert stream.limits == [100]


async def test_a_buffered_body_is_held_to_the_same_limit() -> None:
    """A Request built with its body (tests, outgoing calls) is checked against the limit too."""
    assert await req("/x", "POST", b"abc").read_body(3) == b"abc"
    with pytest.raises(PayloadTooLarge):
        await req("/x", "POST", b"abcd").read_body(3)


def test_payload_too_large_is_a_413_naming_the_limit() -> None:
    """PayloadTooLarge maps to 413 too_large with the limit in the error."""
    resp = response_for_error(PayloadTooLarge(100, declared=5000))
    assert resp.status == 413
    error = resp.json()["error"]
    assert (error["code"], error["param"], error["limit"]) == ("too_large", "body", 100)
    assert "5000" in error["message"]


@pytest.mark.parametrize(
    ("exc", "status", "retry_after"),
    [
        (CircuitOpen("google", 12.2), 503, "13"),
        (RateLimited("isbndb", retry_after_s=3), 503, "3"),
        (RateLimited("isbndb"), 503, "1"),
        (UpstreamError("isbndb", 500, "server error"), 502, None),
    ],
)
def test_errors_map_to_statuses(exc: Exception, status: int, retry_after: str | None) -> None:
    """The exception tree maps to HTTP statuses with Retry-After where it helps."""
    resp = response_for_error(exc)  # type: ignore[arg-type]
    assert resp.status == status
    assert resp.headers.get("retry-after") == retry_after
    assert "error" in json.loads(resp.body)


def test_error_shape() -> None:
    """Errors are `{"error": {"code", "message"}}` in UTF-8 JSON."""
    resp = error_response(418, "teapot", "short and stout", details={"hint": "ü"})
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json() == {"error": {"code": "teapot", "message": "short and stout", "hint": "ü"}}


def test_invalid_isbn_and_config_errors() -> None:
    """A bad ISBN is the caller's 400; a malformed var is the deployment's 500."""
    from bookmeta import ConfigError, InvalidISBN

    bad_isbn = response_for_error(InvalidISBN("check digit does not match"))
    assert (bad_isbn.status, bad_isbn.json()["error"]["param"]) == (400, "isbn")
    bad_var = response_for_error(ConfigError("CACHE_HOT_TTL", "var CACHE_HOT_TTL must be >= 60"))
    assert (bad_var.status, bad_var.json()["error"]["var"]) == (500, "CACHE_HOT_TTL")


async def test_dispatch_passes_bound_arguments_first() -> None:
    """A router built once can serve many invocations: bound objects reach the handler."""

    class App:
        def __init__(self, name: str) -> None:
            self.name = name

        async def show(self, request: Request, id: str) -> Response:
            return json_response({"app": self.name, "id": id})

    router = Router()
    router.add("GET", "/items/{id}", App.show)
    first = await router.dispatch(req("/items/1"), App("a"))
    second = await router.dispatch(req("/items/2"), App("b"))
    assert (first.json(), second.json()) == ({"app": "a", "id": "1"}, {"app": "b", "id": "2"})
