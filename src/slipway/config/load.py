"""Load slipway.toml: parse, validate, and turn every problem into a ConfigError that names
the file, the line, the key path and a fix."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from slipway.config import CONFIG_FILE
from slipway.config.schema import AppConfig
from slipway.errors import ConfigError

_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r'^\s*("?)([A-Za-z0-9_.\-]+)\1\s*=')


def config_path(app_dir: Path) -> Path:
    return app_dir / CONFIG_FILE


def load_config(app_dir: Path) -> AppConfig:
    path = config_path(app_dir)
    if not app_dir.is_dir():
        raise ConfigError(
            "the app folder does not exist",
            where=str(app_dir),
            fix="pass the folder that holds slipway.toml with --app DIR",
        )
    if not path.is_file():
        raise ConfigError(
            f"no {CONFIG_FILE} in this folder",
            where=str(app_dir),
            fix=f"run `slipway init` in {app_dir} or pass the app's folder with --app DIR",
        )
    return parse_config(decode_config(path.read_bytes(), str(path)), str(path))


def decode_config(data: bytes, source: str) -> str:
    """The file's text; a ConfigError naming the first byte that is not UTF-8 (TOML is UTF-8)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.end].hex(" ")
        raise ConfigError(
            f"not valid UTF-8: byte offset {exc.start} (line {line}) holds 0x{bad}",
            where=f"{source}:{line}",
            fix="save the file as UTF-8 (TOML must be UTF-8), e.g. "
            f"`iconv -f latin1 -t utf-8 {Path(source).name}` if it is Latin-1",
        ) from None


def parse_config(text: str, source: str = CONFIG_FILE) -> AppConfig:
    # Text decoded with errors="surrogateescape" (e.g. from `git show`) keeps undecodable
    # bytes as lone surrogates: report them as the bytes they were.
    if any("\udc80" <= c <= "\udcff" for c in text):
        decode_config(text.encode("utf-8", "surrogateescape"), source)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"not valid TOML: {exc}",
            where=source,
            fix="fix the syntax at the line and column given (https://toml.io)",
        ) from None
    try:
        return AppConfig.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(exc, text, source) from None


def config_hash(config: AppConfig) -> str:
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _config_error(exc: ValidationError, text: str, source: str) -> ConfigError:
    problems = [_describe(err, text, source) for err in exc.errors()]
    data = {"problems": [{"where": w, "message": m, "fix": f} for w, m, f in problems]}
    if len(problems) == 1:
        where, message, fix = problems[0]
        return ConfigError(message, where=where, fix=fix, data=data)
    return ConfigError(
        f"{len(problems)} problems in the config",
        where=source,
        details=[f"{w}: {m} — {f}" for w, m, f in problems],
        fix="fix each problem listed above, then run `slipway config check`",
        data=data,
    )


def _describe(err: Any, text: str, source: str) -> tuple[str, str, str]:
    loc = [str(part) for part in err["loc"]]
    key_path = ".".join(loc) if loc else "(top level)"
    line = locate(text, loc)
    where = f"{source}:{line}: {key_path}" if line else f"{source}: {key_path}"
    kind = err["type"]
    if kind == "extra_forbidden":
        valid = _valid_keys(loc[:-1])
        hint = f"; valid keys here: {', '.join(valid)}" if valid else ""
        return where, f"unknown key '{loc[-1]}'", f"remove it or check its spelling{hint}"
    if kind == "missing":
        return where, "required key is missing", f"add `{loc[-1]} = …` (see `slipway init`)"
    message = str(err["msg"]).removeprefix("Value error, ")
    return where, message, _fix_for(loc)


def _fix_for(loc: list[str]) -> str:
    if loc and loc[-1] in {
        "interval",
        "timeout",
        "health_timeout",
        "drain_timeout",
        "stop_grace",
        "keep_warm",
        "max_age",
        "min_latency_increase",
        "every",
        "window",
        "for",
        "step_timeout",
        "step_min_seconds",
        "scale_down_after",
    }:
        return 'write a duration such as "500ms", "10s" or "5m"'
    if loc and loc[0] == "scale":
        return "use a whole number of instances between 0 and 64"
    if loc and loc[0] == "autoscale" and loc[-1] == "target":
        from slipway.config.autoscale import TARGET_UNITS

        units = "; ".join(f"{signal}: {unit}" for signal, unit in TARGET_UNITS.items())
        return f"a number above 0 in the signal's unit ({units})"
    return "see the config reference in docs/config.md"


def _valid_keys(loc: list[str]) -> list[str]:
    from pydantic import BaseModel

    model: Any = AppConfig
    for part in loc:
        if part.isdigit() and typing.get_origin(model) is list:  # an entry of [[array]]
            model = typing.get_args(model)[0]
            continue
        is_model = isinstance(model, type) and issubclass(model, BaseModel)
        field = model.model_fields.get(part) if is_model else None
        if field is None:
            return []
        model = field.annotation
        models = [a for a in typing.get_args(model) if isinstance(a, type)]
        if typing.get_origin(model) in (typing.Union, types.UnionType) and models:
            model = models[0]  # an optional table: `X | None`
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(field.alias or name for name, field in model.model_fields.items())
    return []


def locate(text: str, loc: list[str]) -> int | None:
    """Best-effort line of a key path in TOML text: the key's own line, else its table's."""
    table: list[str] = []
    best: int | None = None
    entries: dict[tuple[str, ...], int] = {}  # [[array]] entries seen so far, per path
    for number, line in enumerate(text.splitlines(), start=1):
        header = _TABLE.match(line)
        if header:
            table = [p.strip().strip('"') for p in header.group(1).split(".")]
            if line.lstrip().startswith("[["):
                index = entries[tuple(table)] = entries.get(tuple(table), -1) + 1
                table.append(str(index))
            if table == loc[: len(table)] and best is None:
                best = number
            continue
        key = _KEY.match(line)
        if key:
            full = table + key.group(2).split(".")
            if full == loc[: len(full)]:
                if len(full) == len(loc):
                    return number
                best = number
    return best
