"""`[edge.cache]` and `[edge.compression]` in slipway.toml: what HAProxy may keep and
compress of the app's answers. Pure: no I/O.

Every value here ends up in haproxy.cfg, so each is bounded and restricted to characters
that mean nothing to HAProxy's config parser (no spaces, quotes, `$`, `#`, `\\`, braces).

Reference: docs/edge.md."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from slipway.config.types import Duration, Size, Strict

MB = 1024 * 1024
DEFAULT_CACHE_SIZE = 64 * MB
MAX_CACHE_SIZE = 4095 * MB  # HAProxy's own limit for one cache (`total-max-size`)
DEFAULT_MAX_OBJECT = 1 * MB
MIN_MAX_OBJECT = 1024
DEFAULT_MAX_AGE = 60.0  # HAProxy's default: nothing is kept longer unless asked
MAX_MAX_AGE = 7 * 86400.0
MAX_PATH_RULES = 50
MAX_PATH_LENGTH = 200
MAX_TYPES = 32
MAX_TYPE_LENGTH = 100

# A path prefix: RFC 3986 path characters minus those HAProxy's config parser interprets
# (quotes, `$` for environment variables, `#` for comments, `\\` for escapes).
PATH_PREFIX = re.compile(r"^/[A-Za-z0-9._~!&()*+,;=:@/%-]*$")
MIME_TYPE = re.compile(r"^[a-z0-9][a-z0-9.+_-]*/[a-z0-9][a-z0-9.+_-]*$")

DEFAULT_TYPES = (
    "text/html",
    "text/plain",
    "text/css",
    "text/javascript",
    "application/javascript",
    "application/json",
    "application/xml",
    "image/svg+xml",
)


def path_prefix(value: str) -> str:
    if not isinstance(value, str):
        raise ValueError('expected a path prefix such as "/static/"')
    if len(value) > MAX_PATH_LENGTH:
        raise ValueError(f"a path prefix is at most {MAX_PATH_LENGTH} characters")
    if not PATH_PREFIX.match(value):
        raise ValueError(
            f'"{value[:60]}" is not a path prefix: it starts with "/" and holds only letters, '
            'digits and . _ ~ ! & ( ) * + , ; = : @ / % - (e.g. "/static/")'
        )
    return value


def mime_type(value: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TYPE_LENGTH:
        raise ValueError(f"expected a MIME type of at most {MAX_TYPE_LENGTH} characters")
    if not MIME_TYPE.match(value):
        raise ValueError(
            f'"{value[:60]}" is not a MIME type: lowercase type/subtype such as "text/html", '
            "without parameters"
        )
    return value


PathPrefix = Annotated[str, AfterValidator(path_prefix)]
MimeType = Annotated[str, AfterValidator(mime_type)]


class EdgeCache(Strict):
    """HAProxy's RAM cache, one per app. Only GET answers with status 200 that declare a
    lifetime (`Cache-Control: max-age`/`s-maxage` above 0, or `Expires`), to requests without
    `Authorization`, and without `Set-Cookie`; none is served after a traffic switch."""

    size: Size = DEFAULT_CACHE_SIZE  # RAM for this app's cache, on every lb host
    max_object: Size = DEFAULT_MAX_OBJECT  # larger answers (headers + body) are not kept
    max_age: Duration = DEFAULT_MAX_AGE  # the longest any answer is kept
    paths: list[PathPrefix] = Field(default_factory=lambda: ["/"], max_length=MAX_PATH_RULES)
    skip_paths: list[PathPrefix] = Field(default_factory=list, max_length=MAX_PATH_RULES)

    @field_validator("size")
    @classmethod
    def _size(cls, value: int) -> int:
        if not MB <= value <= MAX_CACHE_SIZE or value % MB:
            raise ValueError(
                'size is whole megabytes between 1MB and 4095MB (HAProxy\'s limit), e.g. "64MB"'
            )
        return value

    @field_validator("max_object")
    @classmethod
    def _max_object(cls, value: int, info: ValidationInfo) -> int:
        size = info.data.get("size")
        if size is None:  # an invalid size: reported already
            return value
        if not MIN_MAX_OBJECT <= value <= size // 2:
            raise ValueError(
                f"max_object is between 1KB and half of size ({size // 2 // 1024}KB), which "
                'HAProxy refuses to exceed; e.g. max_object = "1MB"'
            )
        return value

    @field_validator("max_age")
    @classmethod
    def _max_age(cls, value: float) -> float:
        if not 1.0 <= value <= MAX_MAX_AGE or value != int(value):
            raise ValueError('max_age is whole seconds between 1s and 7d, e.g. "5m"')
        return value

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('paths needs at least one prefix ("/" for every path)')
        return value


class EdgeCompression(Strict):
    """gzip of the listed types, for clients that accept it, when the app did not encode the
    answer itself (HAProxy leaves an answer with `Content-Encoding` as it is)."""

    types: list[MimeType] = Field(
        default_factory=lambda: list(DEFAULT_TYPES), min_length=1, max_length=MAX_TYPES
    )
