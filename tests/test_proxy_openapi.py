"""docs/openapi.json describes the proxy: real harness responses validate against its schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from test_proxy_support import DUNE, Upstream, get, make_system, mocked

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
DOC = json.loads(DOC_PATH.read_text(encoding="utf-8"))
REGISTRY: Registry[Any] = Registry().with_resource(
    "urn:openapi", Resource.from_contents(DOC, default_specification=DRAFT202012)
)


def validator_for(path: str, status: str) -> Draft202012Validator:
    schema = DOC["paths"][path]["get"]["responses"][status]["content"]["application/json"]
    ref = schema["schema"]["$ref"]
    return Draft202012Validator({"$ref": "urn:openapi" + ref}, registry=REGISTRY)


def test_searches_document_start_index_and_total_items() -> None:
    """startIndex is a parameter of every text search; totalItems says what it counts."""
    for path in ("/search/auto", "/search/author", "/search/title"):
        names = [p["name"] for p in DOC["paths"][path]["get"]["parameters"]]
        assert "startIndex" in names, path
    total = DOC["components"]["schemas"]["VolumesResponse"]["properties"]["totalItems"]
    assert "startIndex" in total["description"]


def test_document_is_openapi_31_with_every_route() -> None:
    """The document is OpenAPI 3.1 and lists every HTTP route of the proxy."""
    assert DOC["openapi"].startswith("3.1")
    assert set(DOC["paths"]) == {
        "/search/auto",
        "/search/isbn",
        "/search/author",
        "/search/title",
        "/health",
        "/metrics",
    }
    for schema in DOC["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("/search/auto", f"/search/auto?q={DUNE}"),
        ("/search/auto", "/search/auto?q=Frank%20Herbert&maxResults=2&includeTranslations=false"),
        ("/search/isbn", "/search/isbn?isbn=0441013597"),
        ("/search/author", "/search/author?q=frank%20herbert"),
        ("/search/title", "/search/title?q=Dune&langRestrict=eng"),
        ("/search/title", "/search/title?q=nothing%20like%20this"),
        ("/search/author", "/search/author?q=frank%20herbert&maxResults=1&startIndex=2"),
        ("/search/auto", f"/search/auto?q={DUNE}&startIndex=1"),
    ],
)
async def test_search_responses_match_the_schema(path: str, url: str) -> None:
    """200 search bodies, fresh and cached, validate against VolumesResponse."""
    system = make_system()
    with mocked():
        for _ in range(2):
            status, body, headers = await get(system, url)
            assert status == 200
            validator_for(path, "200").validate(body)
            assert headers["x-cache"] == body["cache"]


async def test_partial_and_error_responses_match_the_schema() -> None:
    """Partial answers, 400 and 503 bodies validate; health and metrics too."""
    system = make_system()
    with mocked(Upstream(down={"google"})):
        _, partial, _ = await get(system, f"/search/auto?q={DUNE}")
    validator_for("/search/auto", "200").validate(partial)
    _, bad, _ = await get(system, "/search/auto?q=dune&maxResults=0")
    validator_for("/search/auto", "400").validate(bad)
    with mocked(Upstream(down={"google", "isbndb", "openlibrary"})):
        status, down, _ = await get(system, "/search/isbn?isbn=9780593098233")
    assert status == 503
    validator_for("/search/isbn", "503").validate(down)
    _, health, _ = await get(system, "/health")
    validator_for("/health", "200").validate(health)
    _, metrics, _ = await get(system, "/metrics")
    validator_for("/metrics", "200").validate(metrics)


async def test_config_error_responses_match_the_schema() -> None:
    """A malformed var: the 500 config_error body and /health with configError validate."""
    system = make_system(vars={"books_api_proxy": {"CACHE_HOT_TTL": "1h"}})
    status, body, _ = await get(system, "/search/title?q=Dune")
    assert (status, body["error"]["code"]) == (500, "config_error")
    validator_for("/search/title", "500").validate(body)
    _, health, _ = await get(system, "/health")
    assert "configError" in health
    validator_for("/health", "200").validate(health)
    assert (
        "config_error"
        in DOC["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"][
            "examples"
        ]
    )


async def test_client_limit_responses_match_the_schema() -> None:
    """The 401 of an unknown app key and the 429 of a spent limit validate."""
    system = make_system()
    with mocked():
        status, unknown, _ = await get(
            system, f"/search/auto?q={DUNE}", headers={"authorization": "Bearer nope"}
        )
        assert status == 401
        validator_for("/search/auto", "401").validate(unknown)
        for _ in range(200):
            status, limited, headers = await get(system, f"/search/isbn?isbn={DUNE}")
            if status == 429:
                break
    assert status == 429
    assert headers["retry-after"].isdigit()
    validator_for("/search/isbn", "429").validate(limited)
