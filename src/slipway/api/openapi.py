"""The API's OpenAPI 3 description, built from the real route table and the request models,
so it cannot drift from what the daemon serves (`GET /v1/openapi.json`; used to fuzz the API
in the tests)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from starlette.routing import BaseRoute, Route

from slipway import __version__
from slipway.api import schemas
from slipway.api.admin import TokenRequest

BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "deploy"): schemas.DeployRequest,
    ("POST", "rollback"): schemas.RollbackRequest,
    ("POST", "scale"): schemas.ScaleRequest,
    ("PUT", "secret"): schemas.SecretValue,
    ("POST", "shutdown"): schemas.ShutdownRequest,
    ("POST", "create_token"): TokenRequest,
}
PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")
ERROR = {"description": "an error: what, where, how to fix it"}


def openapi(routes: list[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {}
    for route in routes:
        if not isinstance(route, Route) or not route.path.startswith("/v1/"):
            continue
        path = PARAM.sub(r"{\1}", route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = operation(route, method, components)
    return {
        "openapi": "3.0.3",
        "info": {"title": "slipway daemon API", "version": __version__},
        "paths": paths,
        # Every route needs `Authorization: Bearer swt_…` (or the local socket's owner): see
        # docs/api.md. Not declared as a security scheme, so fuzzers send the given token.
        "components": {"schemas": components},
    }


def operation(route: Route, method: str, components: dict[str, Any]) -> dict[str, Any]:
    role = getattr(route.endpoint, "slipway_role", "?")
    op: dict[str, Any] = {
        "operationId": f"{route.name}_{method.lower()}_{len(route.path)}",
        "description": f"needs the {role} role",
        "parameters": [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer" if kind in ("int", "id") else "string"},
            }
            for name, kind in PARAM.findall(route.path)
        ],
        "responses": {
            "200": {"description": "done"},
            "202": {"description": "started: a deployment"},
            "400": ERROR,
            "401": ERROR,
            "403": ERROR,
            "404": ERROR,
            "409": ERROR,
            "413": ERROR,
        },
    }
    model = BODIES.get((method, route.name))
    if model is not None:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
        ref = {"$ref": f"#/components/schemas/{model.__name__}"}
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
    return op
