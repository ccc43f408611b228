"""The published API surface: every path, method, operation id and parameter name, read from
the running server's ``/openapi.json`` (a refactoring of the endpoints must not change it)."""

from __future__ import annotations

import httpx

from tests.serve.conftest import Server

FILTERS = ["k", "account", "since", "until", "modality", "collate", "same_modality",
           "include_same", "forwarded_from", "forwards", "nprobe", "ef_search", "k_factor"]  # fmt: skip

EXPECTED = {
    ("/api/health", "get"): ("health_api_health_get", []),
    ("/api/info", "get"): ("info_api_info_get", []),
    ("/api/media", "get"): ("media_api_media_get", ["post_id", "kind"]),
    ("/api/post", "get"): ("post_api_post_get", ["post_id"]),
    ("/api/search", "get"): ("search_text_api_search_get", ["text", *FILTERS]),
    ("/api/search/file", "post"): ("search_file_api_search_file_post", FILTERS),
    ("/api/similar", "get"): ("similar_api_similar_get", ["post_id", "artifact", *FILTERS]),
    ("/api/resolve", "get"): ("resolve_api_resolve_get", ["ref"]),
    ("/api/thumbnail", "get"): ("thumb_api_thumbnail_get", ["post_id", "kind"]),
}


def test_openapi_paths_and_parameters(server: Server) -> None:
    schema = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    found = {
        (path, method): (op["operationId"], [p["name"] for p in op.get("parameters", [])])
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
    }
    assert found == EXPECTED
    upload = schema["paths"]["/api/search/file"]["post"]["requestBody"]["content"]
    body = upload["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    fields = schema["components"]["schemas"][body]
    assert sorted(fields["properties"]) == ["file", "kind"]
    assert fields["required"] == ["file"]
