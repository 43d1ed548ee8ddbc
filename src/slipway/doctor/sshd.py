"""Read sshd_config the way sshd does, for the settings `slipway doctor` judges.

sshd's rules: keywords are case-insensitive and take `Keyword value` or `Keyword=value`;
`#` starts a comment; the first value obtained for a keyword wins; `Include` expands its
(globbed, sorted) files in place, relative paths against the main file's folder; a `Match`
block lasts to the end of its file and its settings apply only to the connections it
matches, overriding the global ones (`Match all` matches every connection).
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path

# ChallengeResponseAuthentication is the old name of KbdInteractiveAuthentication
ALIASES = {"challengeresponseauthentication": "kbdinteractiveauthentication"}
WATCHED = {"permitrootlogin", "passwordauthentication", "kbdinteractiveauthentication", "usepam"}
# OpenSSH's defaults when a keyword is absent
DEFAULTS = {
    "permitrootlogin": "prohibit-password",
    "passwordauthentication": "yes",
    "kbdinteractiveauthentication": "yes",
    "usepam": "no",
}
MAX_DEPTH = 16  # sshd's own limit on nested Includes
_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*)\s*(?:=\s*|\s+|$)(.*)$")
_WORD = re.compile(r'"[^"]*"|\S+')


@dataclass(frozen=True)
class Setting:
    value: str  # lowercased first argument
    where: str  # file:line
    match: str | None = None  # the Match line it sits under, e.g. "Match Address 10.0.0.0/8"


@dataclass
class SshdConfig:
    path: Path
    found: bool = False
    settings: dict[str, Setting] = field(default_factory=dict)  # global, first wins
    match_all: dict[str, Setting] = field(default_factory=dict)  # under `Match all`
    in_match: list[tuple[str, Setting]] = field(default_factory=list)  # conditional ones
    problems: list[str] = field(default_factory=list)  # files that could not be read

    def effective(self, keyword: str) -> tuple[str, Setting | None]:
        """The value every connection gets (ignoring conditional Match blocks)."""
        setting = self.match_all.get(keyword) or self.settings.get(keyword)
        return (setting.value if setting else DEFAULTS[keyword]), setting


def split_words(text: str) -> list[str]:
    words: list[str] = []
    for word in _WORD.findall(text):
        if word.startswith("#"):
            break
        words.append(word[1:-1] if len(word) >= 2 and word[0] == word[-1] == '"' else word)
    return words


def read_sshd_config(path: Path) -> SshdConfig:
    config = SshdConfig(path=path, found=path.is_file())
    if config.found:
        _read(path, path.parent, config, None, 0)
    return config


def _read(path: Path, base: Path, config: SshdConfig, match: str | None, depth: int) -> None:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        config.problems.append(f"cannot read {path}: {exc.strerror or exc}")
        return
    for number, line in enumerate(lines, 1):
        parsed = _LINE.match(line)
        if not parsed or line.lstrip().startswith("#"):
            continue
        keyword, args = parsed.group(1).lower(), split_words(parsed.group(2))
        if keyword == "match":
            match = " ".join(["Match", *args])
            continue
        if keyword == "include":
            if depth >= MAX_DEPTH:
                config.problems.append(f"{path}:{number}: Includes nested too deeply")
                continue
            for pattern in args:
                full = Path(pattern) if Path(pattern).is_absolute() else base / pattern
                for name in sorted(glob.glob(str(full))):
                    _read(Path(name), base, config, match, depth + 1)
            continue
        keyword = ALIASES.get(keyword, keyword)
        if keyword not in WATCHED or not args:
            continue
        setting = Setting(args[0].lower(), f"{path}:{number}", match)
        if match is None:
            config.settings.setdefault(keyword, setting)
        elif match.lower() == "match all":
            config.match_all.setdefault(keyword, setting)
        else:
            config.in_match.append((keyword, setting))
