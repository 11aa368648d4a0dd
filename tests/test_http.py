"""Router, request parsing and the JSON error shape."""

from __future__ import annotations

import json

import pytest

from bookmeta import (
    CircuitOpen,
    InvalidInput,
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
def test_bad_json_bodies_are_invalid_input(body: bytes) -> None:
    """Non-JSON, non-UTF-8 and deeply nested bodies raise InvalidInput."""
    with pytest.raises(InvalidInput):
        req("/x", "POST", body).json()


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
