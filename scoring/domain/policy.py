"""The policy file: every number of the supervision regime in one validated TOML file.

``scoring/domain/policy.toml`` (shipped with the package) holds the documented defaults and their sources. A bureau
copies it, edits it, and points riskgrade at its copy with ``--policy FILE`` or ``RISKGRADE_POLICY``; keys
it leaves out keep their defaults (the bureau's file is laid over the shipped one, table by table).

The file loads once into frozen dataclasses; each function receives only the part it needs
(``plan(scores, policy.caps)``), never the whole dict. Sections may be typed by dataclasses that live in
lower layers (``features``, ``models``): this module only reads TOML and checks it against them.

Errors name the key: ``policy.toml: tiers.high_share: expected a number between 0 and 1, got 1.5``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from features.errors import PolicyError
from scoring.domain.monitoring import MonitoringSettings
from scoring.domain.planning import PlanningPolicy
from scoring.domain.supervision import SupervisionPolicy
from scoring.domain.tiers import OverridePolicy, TierPolicy

DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.toml")


def policy_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The policy file to use: ``path``, else ``$RISKGRADE_POLICY``, else the shipped defaults."""
    chosen = path or os.environ.get("RISKGRADE_POLICY")
    return Path(chosen) if chosen else DEFAULT_POLICY_PATH


def read_policy_mapping(path: str | os.PathLike[str] | None = None) -> tuple[dict[str, Any], str]:
    """The merged policy mapping (defaults overlaid with the bureau's file) and its source name."""
    defaults = _read_toml(DEFAULT_POLICY_PATH)
    chosen = policy_path(path)
    if chosen.resolve() == DEFAULT_POLICY_PATH.resolve():
        return defaults, chosen.name
    return _overlay(defaults, _read_toml(chosen), chosen.name), chosen.name


def policy_hash(mapping: Mapping[str, Any]) -> str:
    """A short stable hash of the effective policy, recorded with every batch run."""
    canonical = repr(_sorted(mapping)).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()[:16]


def build_section(kind: type, mapping: Any, where: str) -> Any:
    """Build the frozen dataclass ``kind`` from a TOML mapping, refusing unknown keys and wrong types.

    ``where`` is the dotted path used in messages (``"policy.toml: tiers"``). A dataclass may define
    ``validate(self) -> None`` raising ``ValueError(message)`` or ``ValueError((key, message))`` for
    cross-field rules; the message is re-raised as :class:`PolicyError` with the key in front.
    """
    if not isinstance(mapping, Mapping):
        raise PolicyError(f"{where}: expected a table, got {mapping!r}")
    fields = {f.name: f for f in dataclasses.fields(kind) if f.init}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise PolicyError(f"{where}.{unknown[0]}: unknown key (known keys: {', '.join(sorted(fields))})")
    missing = [name for name, f in fields.items() if name not in mapping
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise PolicyError(f"{where}.{missing[0]}: missing key")
    hints = typing.get_type_hints(kind)
    values = {name: _convert(hints[name], mapping[name], f"{where}.{name}") for name in mapping}
    try:
        built = kind(**values)
        if hasattr(built, "validate"):
            built.validate()
    except ValueError as exc:
        detail = exc.args[0] if exc.args else str(exc)
        if isinstance(detail, tuple):
            key, message = detail
            raise PolicyError(f"{where}.{key}: {message}") from exc
        raise PolicyError(f"{where}: {detail}") from exc
    return built


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        errors = []
        for option in options:
            try:
                return _convert(option, value, where)
            except PolicyError as exc:
                errors.append(str(exc))
        raise PolicyError(errors[0])
    if origin is typing.Literal:
        if value not in args:
            raise PolicyError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        return build_section(hint, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise PolicyError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping, typing.Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise PolicyError(f"{where}: expected a table, got {value!r}")
        value_hint = args[1] if len(args) == 2 else Any
        return types.MappingProxyType(
            {str(k): _convert(value_hint, v, f"{where}.{k}") for k, v in value.items()}
        )
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise PolicyError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PolicyError(f"{where}: expected a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PolicyError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise PolicyError(f"{where}: expected text, got {value!r}")
        return value
    raise TypeError(f"policy field {where} has an unsupported type {hint!r}")  # a programming error


def _read_toml(path: Path) -> dict[str, Any]:
    """The TOML file ``path`` as a mapping: UTF-8, with or without a byte-order mark (Notepad writes one); any
    other encoding, a binary file or a folder is refused naming what was found."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist") from None
    except IsADirectoryError:
        raise PolicyError(f"policy file {path} is a folder: name the .toml file in it") from None
    except OSError as exc:
        raise PolicyError(f"policy file {path} cannot be read: {exc.strerror or exc}") from exc
    try:
        return tomllib.loads(_policy_text(path, data))
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path.name}: not valid TOML: {exc}") from exc


_UTF16_32_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
                  (b"\xfe\xff", "UTF-16"))


def _policy_text(path: Path, data: bytes) -> str:
    save_as = "save it as UTF-8 (in Notepad: Save as → Encoding UTF-8)"
    for bom, encoding in _UTF16_32_BOMS:
        if data.startswith(bom):
            raise PolicyError(f"{path.name}: the file is {encoding} text; {save_as}")
    data = data.removeprefix(b"\xef\xbb\xbf")  # UTF-8 with a byte-order mark is still UTF-8
    nul = data.find(b"\x00")
    if nul >= 0:
        hint = ("looks like UTF-16 text without a byte-order mark; " + save_as) if _utf16_like(data) else (
            "a binary file, not a TOML text file")
        raise PolicyError(f"{path.name}: NUL byte at offset {nul}: {hint}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise PolicyError(f"{path.name} line {line}: byte 0x{data[exc.start]:02x} at offset {exc.start} is not "
                          f"UTF-8 (a GBK/ANSI file?); {save_as}") from None


def _utf16_like(data: bytes) -> bool:
    head = data[:200]
    return len(head) >= 4 and (head[1::2].count(0) > len(head) // 4 or head[0::2].count(0) > len(head) // 4)


# Tables whose keys are the bureau's own (its departments, ...): a bureau's file replaces them as a whole
# instead of being laid over the defaults key by key (so its own keys are not refused as unknown).
REPLACED_AS_A_WHOLE: frozenset[tuple[str, ...]] = frozenset({
    ("planning", "capacity"),
    ("planning", "sector_department"),
})


def _overlay(defaults: Mapping[str, Any], override: Mapping[str, Any], source: str,
             path: tuple[str, ...] = ()) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in override.items():
        if key not in defaults:
            dotted = ".".join((*path, key))
            raise PolicyError(f"{source}: {dotted}: unknown key (known keys: {', '.join(sorted(defaults))})")
        if (isinstance(value, Mapping) and isinstance(defaults[key], Mapping)
                and (*path, key) not in REPLACED_AS_A_WHOLE):
            merged[key] = _overlay(defaults[key], value, source, (*path, key))
        else:
            merged[key] = value
    return merged


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple((k, _sorted(value[k])) for k in sorted(value))
    if isinstance(value, list | tuple):
        return tuple(_sorted(v) for v in value)
    return value


# ---------------------------------------------------------------------------------------------
# The whole policy
# ---------------------------------------------------------------------------------------------


def _empty() -> Mapping[str, Any]:
    return types.MappingProxyType({})


@dataclasses.dataclass(frozen=True)
class LabelSettings:
    """The ``[labels]`` section, checked when the file loads (a bad target used to pass ``nightly`` and crash
    ``train`` later); commands keep reading the section as a mapping (:attr:`Policy.labels`)."""

    horizon_days: int = 365
    target: str = "accident+major_hazard+suspension"
    exclude_road_traffic: bool = True

    def validate(self) -> None:
        from features.labels import OUTCOMES, LabelTarget

        if self.horizon_days < 1:
            raise ValueError(("horizon_days", f"expected at least 1 day, got {self.horizon_days}"))
        try:
            LabelTarget.parse(self.target)
        except ValueError:
            raise ValueError(("target", f"expected outcomes joined with '+' from {', '.join(OUTCOMES)}, got "
                                        f"{self.target!r}")) from None


@dataclasses.dataclass(frozen=True)
class NightlyPolicy:
    """The ``[nightly]`` section: how far ahead of today a nightly run may be dated."""

    max_future_days: int = 3

    def validate(self) -> None:
        if self.max_future_days < 0:
            raise ValueError(("max_future_days", f"expected 0 or more days, got {self.max_future_days}"))


@dataclasses.dataclass(frozen=True)
class WebPolicy:
    """The ``[web]`` section: the workbench's sessions, login throttling, passwords and public disclosure
    (``riskgrade serve``; see :class:`scoring.web.settings.WebSettings`, which adds the secret key and the clock)."""

    session_max_age_seconds: int = 8 * 3600
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_window_seconds: int = 900
    password_min_length: int = 15
    public_disclosure: bool = False
    stale_run_hours: int = 36
    secure_cookie: bool = False
    workers: int = 0
    threads: int = 4

    def validate(self) -> None:
        if self.workers < 0:
            raise ValueError(("workers", f"expected 0 (one server process per CPU core) or more, got {self.workers}"))
        for name in ("session_max_age_seconds", "login_max_failures", "login_max_failures_per_address",
                     "login_window_seconds", "password_min_length", "stale_run_hours", "threads"):
            if getattr(self, name) < 1:
                raise ValueError((name, f"expected a whole number of at least 1, got {getattr(self, name)}"))


@dataclasses.dataclass(frozen=True)
class Policy:
    """The whole validated policy file; hand each function only the section it needs.

    ``labels``, ``expert_card`` and ``training`` are kept as read-only mappings here (their typed forms belong
    to the feature and model layers); any other top-level key is refused.
    """

    tiers: TierPolicy
    overrides: OverridePolicy
    supervision: SupervisionPolicy
    planning: PlanningPolicy
    monitoring: MonitoringSettings
    nightly: NightlyPolicy = dataclasses.field(default_factory=NightlyPolicy)
    labels: Mapping[str, Any] = dataclasses.field(default_factory=_empty)
    expert_card: Mapping[str, Any] = dataclasses.field(default_factory=_empty)
    training: Mapping[str, Any] = dataclasses.field(default_factory=_empty)
    web: WebPolicy = dataclasses.field(default_factory=WebPolicy)


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Read, overlay and validate the policy file (``path``, ``$RISKGRADE_POLICY`` or the shipped defaults).

    Raises :class:`PolicyError` naming the key: ``policy.toml: supervision.inspectors.min: the law requires…``.
    """
    mapping, source = read_policy_mapping(path)
    return policy_from_mapping(mapping, source)


def policy_from_mapping(mapping: Mapping[str, Any], source: str = "policy.toml") -> Policy:
    """:class:`Policy` from an already merged mapping (``source`` names the file in messages)."""
    if not isinstance(mapping, Mapping):
        raise PolicyError(f"{source}: expected a table, got {mapping!r}")
    fields = {f.name: f for f in dataclasses.fields(Policy)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise PolicyError(f"{source}: {unknown[0]}: unknown key (known keys: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(Policy)
    values = {}
    for name, f in fields.items():
        if name in mapping:
            values[name] = _convert(hints[name], mapping[name], f"{source}: {name}")
        elif f.default_factory is dataclasses.MISSING:
            raise PolicyError(f"{source}: {name}: missing section")
    if "labels" in mapping:  # typed for its check only: the label builders take its values one by one
        build_section(LabelSettings, mapping["labels"], f"{source}: labels")
    return Policy(**values)
