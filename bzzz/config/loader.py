"""Loading the settings: the home directory, HOME/config.toml, BZZZ_* overrides.

Keys are checked against the sections (an unknown one gets a suggestion), values are
coerced to each field's type, then every section is checked. Every failure is a
ConfigError that names the key, where the bad value came from, and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bzzz.config.base import Invalid, env_var
from bzzz.config.render import toml_value
from bzzz.config.settings import CONFIG_FILE, SECTIONS, Settings
from bzzz.errors import ConfigError

HOME_ENV = "BZZZ_HOME"
DEFAULT_HOME = "~/.bzzz"


def resolve_home(
    home: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> Path:
    environ = os.environ if environ is None else environ
    chosen = home if home is not None else environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(chosen).expanduser().resolve()


def load_settings(home: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read HOME/config.toml, apply BZZZ_* overrides, validate everything."""
    environ = os.environ if environ is None else environ
    path = home / CONFIG_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no configuration at {path}. Fix: run `bzzz init --home {home} --name NODE_NAME`."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}). Fix: correct the file.") from None
    _reject_unknown(raw, path)
    sections = {
        name: _load_section(name, cls, raw.get(name, {}), environ, path)
        for name, cls in SECTIONS.items()
    }
    settings = Settings(home=home, **sections)
    _validate(settings)
    return settings


def _reject_unknown(raw: Mapping[str, Any], path: Path) -> None:
    for section, values in raw.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"unknown section [{section}] in {path}.{_suggest(section, SECTIONS)}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{section} in {path} must be a [{section}] table.")
        known = {f.name for f in dataclasses.fields(SECTIONS[section])}
        for key in values:
            if key not in known:
                raise ConfigError(f"unknown key {section}.{key} in {path}.{_suggest(key, known)}")


def _suggest(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" Fix: did you mean `{close[0]}`?" if close else " Fix: remove it."


class _WrongType(Exception):
    def __init__(self, expected: str, shown: str) -> None:
        super().__init__(expected)
        self.expected, self.shown = expected, shown


def _load_section(
    section: str, cls: type[Any], values: Mapping[str, Any], environ: Mapping[str, str], path: Path
) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        var = env_var(section, f.name)
        from_env = var in environ
        if not from_env and f.name not in values:
            continue
        hint = hints[f.name]
        try:
            raw = _from_env(environ[var], hint) if from_env else values[f.name]
            kwargs[f.name] = _check_type(raw, hint)
        except _WrongType as wrong:
            example = (
                f.default if f.default is not dataclasses.MISSING else _PLACEHOLDERS[_kind(hint)]
            )
            if from_env:
                source, fix = f"environment variable {var}", f"set {var}={_env_value(example)}"
            else:
                source, fix = str(path), f"write `{f.name} = {toml_value(example)}` in [{section}]"
            raise ConfigError(
                f"{section}.{f.name} from {source} must be {wrong.expected},"
                f" not {wrong.shown}. Fix: {fix}."
            ) from None
    try:
        return cls(**kwargs)
    except TypeError:
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs]
        raise ConfigError(
            f"{section}.{missing[0]} is required. Fix: set it in the [{section}] table of {path}"
            f" or in {env_var(section, missing[0])}."
        ) from None


_PLACEHOLDERS: Mapping[str, Any] = {
    "bool": True,
    "int": 1,
    "float": 1.0,
    "str": "...",
    "list": ("...",),
}
_EXPECTED: Mapping[str, str] = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "list": "a list of strings",
}


def _kind(hint: Any) -> str:
    if typing.get_origin(hint) is tuple:
        return "list"
    if hint in (bool, int, float, str):
        return str(hint.__name__)
    raise TypeError(f"unsupported settings type {hint}")  # only the kinds above are used


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def _from_env(text: str, hint: Any) -> Any:
    kind = _kind(hint)
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise _WrongType(_EXPECTED[kind], repr(text))
    if kind in ("int", "float"):
        try:
            return hint(text)
        except ValueError:
            raise _WrongType(_EXPECTED[kind], repr(text)) from None
    if kind == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def _check_type(value: Any, hint: Any) -> Any:
    kind = _kind(hint)
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind == "str":
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)
        value = tuple(value) if ok else value
    if not ok:
        raise _WrongType(_EXPECTED[kind], repr(value))
    return value


def _validate(settings: Settings) -> None:
    """Checks of meaning; each failure names the key, where to change it, and the fix."""
    try:
        settings.check()
    except Invalid as bad:
        section, name = bad.key.split(".")
        raise ConfigError(
            f"{bad.key} {bad.problem}. Fix: {bad.fix}"
            f" (in {settings.config_path} or {env_var(section, name)})."
        ) from None
