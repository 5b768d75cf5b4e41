"""The one configuration layer: strict models, one error class, one message template.

Every package builds its typed config the same way::

    cfg = parse("ingestion.outliers", OutlierConfig, params, error=IngestionConfigError)

- :class:`StrictModel` is the one base model (``extra="forbid"``, frozen): a misspelled YAML key is
  an error, never a silently ignored setting. :data:`STRICT_DATACLASS` is the same policy for
  pydantic dataclasses (training keeps dataclass semantics for its callers).
- :class:`ConfigError` is the one error; each package subclasses it (``IngestionConfigError``,
  ``DataQualityConfigError``, ``RegistryConfigError``, ``ModelingConfigError``,
  ``TrainingConfigError``), so ``except ConfigError`` catches every bad configuration.
- :func:`parse` turns pydantic's errors into one sentence per problem, sklearn-style, always in
  the same template: the dotted key, the value received, the valid options and "did you mean"::

      ingestion.outliers.contamnation is not a known key; valid keys are [...]; did you mean 'contamination'?
      ingestion.alignment.dtw.window must be one of ['none', 'sakoe_chiba', 'itakura']; got 'sakoe-chiba'; did you mean 'sakoe_chiba'?
      training.trainer.optimizer.lr must be > 0; got -1

The second half of the module checks the *whole* parameter tree of a run against ``conf/base``:
``conf/base/parameters_*.yml`` is the reference of every parameter and its default. Other
environments (``conf/test``, ``conf/gpu``, ``conf/local``) and ``kedro run --params`` may only
override keys that exist there. A mapping that is empty (``{}``) in ``conf/base`` is free-form:
any keys may go below it (for example per-channel value ranges). A ``null`` in ``conf/base`` is
an unset *value* (a URI, a length, a list of channels): it takes a value, and keys below it
(``training.trainer.mlflow.tracking_uri.x=1``) are unknown keys like any other.
:func:`load_project_parameters` is the one loader of a project's parameters outside a Kedro
session (the CLI uses it; ``settings.py`` holds the same loader settings for ``kedro run``).
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Strict, TypeAdapter, ValidationError

T = TypeVar("T")

STRICT = ConfigDict(extra="forbid", frozen=True)
"""The policy of every config model: unknown keys are errors, a built config does not change."""
STRICT_DATACLASS = ConfigDict(extra="forbid")
"""The same policy for pydantic dataclasses (which stay mutable, as dataclasses are)."""
StrictInt = Annotated[int, Strict()]
"""An int field that refuses ``"3"``, ``3.0`` and ``True`` (YAML and JSON give real ints)."""
StrictFloat = Annotated[float, Strict()]
"""A float field that takes ints (``1`` -> ``1.0``) but no strings."""
StrictBool = Annotated[bool, Strict()]
"""A bool field that refuses ``"yes"`` and ``1``."""

BASE_ENV = "base"
DEFAULT_ENV = "local"
CONFIG_LOADER_ARGS: dict[str, Any] = {
    "base_env": BASE_ENV,
    "default_run_env": DEFAULT_ENV,
    # conf/test, conf/gpu and conf/local override only the keys they name (deep merge).
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
}
"""``OmegaConfigLoader`` settings shared by ``settings.py`` and :func:`load_project_parameters`."""


class ConfigError(ValueError):
    """A configuration section has an unknown key or an invalid value (the message names both)."""


class UnknownParameterError(ConfigError):
    """A parameter key is not defined in ``conf/base``."""


class StrictModel(BaseModel):
    """Base of every config model: ``extra="forbid"`` and frozen."""

    model_config = STRICT


# -- the message template --------------------------------------------------------------------
def did_you_mean(received: Any, options: typing.Iterable[Any]) -> str:
    """``"; did you mean 'x'?"`` for the closest option to ``received``, else ``""``."""
    names = [str(o) for o in options]
    close = difflib.get_close_matches(str(received), names, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_key_message(key: str, valid: typing.Sequence[str]) -> str:
    """``"<key> is not a known key; valid keys are [...]"`` plus "did you mean"."""
    leaf = key.rsplit(".", 1)[-1]
    return f"{key} is not a known key; valid keys are {list(valid)}{did_you_mean(leaf, valid)}"


def choice_message(key: str, received: Any, options: typing.Sequence[Any]) -> str:
    """``"<key> must be one of [...]; got <received>"`` plus "did you mean"."""
    return (
        f"{key} must be one of {list(options)}; got {received!r}{did_you_mean(received, options)}"
    )


_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}
_BOUND_CTX = {
    "greater_than": "gt",
    "greater_than_equal": "ge",
    "less_than": "lt",
    "less_than_equal": "le",
}


def _fields(owner: Any) -> dict[str, Any]:
    """Field name -> annotation of a pydantic model or (pydantic) dataclass, else ``{}``."""
    if isinstance(owner, type) and issubclass(owner, BaseModel):
        return {name: f.annotation for name, f in owner.model_fields.items()}
    if isinstance(owner, type) and dataclasses.is_dataclass(owner):
        hints = typing.get_type_hints(owner)
        return {f.name: hints[f.name] for f in dataclasses.fields(owner)}
    return {}


def _unwrap(annotation: Any) -> Any:
    """The model inside ``X | None`` or ``dict[str, X]``, else ``annotation``."""
    for arg in (annotation, *typing.get_args(annotation)):
        if _fields(arg):
            return arg
    return annotation


def _owner(model: Any, loc: tuple[Any, ...]) -> Any:
    """The model or dataclass that holds the last element of ``loc``."""
    current = model
    for part in loc:
        fields = _fields(current)
        if str(part) in fields:
            current = _unwrap(fields[str(part)])
        elif not fields:  # a key of a dict[str, Model] (``stages.raw``)
            continue
    return current


def _literal_options(model: Any, loc: tuple[Any, ...]) -> list[Any] | None:
    owner = _owner(model, loc[:-1])
    annotation = _fields(owner).get(str(loc[-1])) if loc else None
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is Literal:
            return list(typing.get_args(arg))
    return None


def describe_errors(exc: ValidationError, section: str, model: Any) -> list[str]:
    """One template sentence per pydantic error of ``model`` built under ``section``."""
    lines: dict[str, str] = {}
    for err in exc.errors():
        # pydantic adds the union member it tried (``int``, ``literal['auto']``) to the location
        loc = tuple(
            p
            for p in err["loc"]
            if not (isinstance(p, str) and ("[" in p or "-" in p or p in _SCALARS))
        )
        key = ".".join([section, *(str(p) for p in loc)]) if loc else section
        if key in lines:
            continue  # one sentence per key: the first union member's complaint
        received = err.get("input")
        kind = err["type"]
        if kind in ("extra_forbidden", "unexpected_keyword_argument"):
            lines[key] = unknown_key_message(key, list(_fields(_owner(model, loc[:-1]))))
        elif kind == "literal_error":
            options = _literal_options(model, loc) or _ctx_options(err)
            lines[key] = choice_message(key, received, options)
        elif kind in _BOUNDS:
            bound = err.get("ctx", {}).get(_BOUND_CTX[kind])
            lines[key] = f"{key} must be {_BOUNDS[kind]} {bound}; got {received!r}"
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            if "got " not in msg:
                msg = f"{msg}; got {received!r}"
            lines[key] = f"{key}: {msg}"
    return list(lines.values())


_SCALARS = {"int", "float", "str", "bool", "none", "list", "dict", "tuple"}


def _ctx_options(err: Mapping[str, Any]) -> list[str]:
    expected = str(err.get("ctx", {}).get("expected", ""))
    return [part.strip(" '") for part in expected.replace(" or ", ",").split(",") if part.strip()]


def parse(
    section: str,
    model: type[T],
    data: Mapping[str, Any] | T | None,
    *,
    error: type[ConfigError] = ConfigError,
) -> T:
    """Build ``model`` from the plain parameters dict ``data`` of the YAML key ``section``.

    Args:
        section: Dotted name of the block (``"ingestion.outliers"``); every message starts with it.
        model: A :class:`StrictModel` subclass or a pydantic dataclass.
        data: The parameters (``None`` = all defaults); an instance of ``model`` is returned as is.
        error: The package's :class:`ConfigError` subclass to raise.

    Raises:
        ConfigError: (``error``) one template sentence per problem, joined by ``"; "``.
    """
    if isinstance(data, model):
        return data
    if data is None:
        data = {}
    if isinstance(data, BaseModel):
        data = data.model_dump()
    if not isinstance(data, Mapping):
        raise error(f"{section} must be a mapping; got {type(data).__name__}")
    try:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model.model_validate(dict(data))
        return TypeAdapter(model).validate_python(dict(data))
    except ValidationError as exc:
        raise error("; ".join(describe_errors(exc, section, model))) from None


# -- the parameter tree of a run ----------------------------------------------------------------
def load_base_parameters(conf_base: Path) -> dict[str, Any]:
    """Merge every ``parameters*.yml`` under ``conf_base`` into one dict (top keys are disjoint)."""
    merged: dict[str, Any] = {}
    for path in sorted(conf_base.glob("**/parameters*.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise UnknownParameterError(
                f"{path}: expected a mapping at the top level, got {type(data).__name__}"
            )
        merged.update(data)
    return merged


def load_project_parameters(conf: Path, env: str) -> dict[str, Any]:
    """The parameters of ``conf/base`` soft-merged with ``conf/<env>``, as ``kedro run --env``.

    Uses :data:`CONFIG_LOADER_ARGS`, the settings ``settings.py`` gives Kedro. ``env`` equal to
    ``base`` reads ``conf/base`` alone. Returns ``{}`` when there are no parameter files.

    Raises:
        ConfigError: a YAML error or a duplicate key, naming ``conf`` and ``env``.
    """
    from kedro.config import MissingConfigException, OmegaConfigLoader

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # omegaconf resolver deprecation noise
            loader = OmegaConfigLoader(conf_source=str(conf), env=env, **CONFIG_LOADER_ARGS)
            return dict(loader["parameters"])
    except MissingConfigException:
        return {}
    except Exception as exc:  # YAML errors, duplicate keys
        raise ConfigError(f"cannot read the parameters in {conf} (env {env}): {exc}") from exc


def load_section(
    conf_dir: str | Path,
    section: str,
    env: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    error: type[ConfigError] = ConfigError,
) -> dict[str, Any]:
    """The ``section`` block of ``conf/base/parameters_<section>.yml``, then of
    ``conf/<env or local>/parameters_<section>.yml`` on top, then ``overrides``: the files a
    command outside ``kedro run`` reads (``sensorops serve``, ``sensorops rollout``).

    Raises:
        error: a file is not valid YAML, or lacks the top-level ``section`` key.
    """
    merged: dict[str, Any] = {}
    for sub in ("base", env or "local"):
        path = Path(conf_dir) / sub / f"parameters_{section}.yml"
        if not path.is_file():
            continue
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise error(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(doc, dict) or section not in doc:
            raise error(f"{path} must have a top-level {section!r} key")
        merged = deep_merge(merged, doc[section] or {})
    return deep_merge(merged, overrides or {})


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in (nested mappings merged, other values replaced)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def is_path_key(key: str) -> bool:
    """Parameter keys that hold a file or folder: ``path``, ``*_path``, ``*_dir``."""
    return key == "path" or key.endswith(("_path", "_dir"))


def resolve_project_paths(params: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """``params`` with every relative path value (:func:`is_path_key`) made absolute under ``root``.

    Relative paths in parameters mean "in the project", as catalog paths do, wherever ``kedro``
    was started from. URLs (``s3://...``) and absolute paths are left alone.
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            out[key] = resolve_project_paths(value, root)
        elif (
            isinstance(value, str)
            and is_path_key(str(key))
            and "://" not in value
            and not Path(value).is_absolute()
        ):
            out[key] = str(root / value)
        else:
            out[key] = value
    return out


def _walk(params: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in params.items():
        path = f"{prefix}{key}"
        yield path, value
        if isinstance(value, Mapping):
            yield from _walk(value, path + ".")


def unknown_parameter_keys(
    params: Mapping[str, Any], reference: Mapping[str, Any]
) -> list[tuple[str, list[str]]]:
    """Key paths in ``params`` absent from ``reference``, each with the valid keys at that level.

    Returns:
        ``[(dotted_key, valid_sibling_keys), ...]``; empty when everything is known.
    """
    problems: list[tuple[str, list[str]]] = []

    def visit(node: Mapping[str, Any], ref: Any, prefix: str) -> None:
        if prefix and isinstance(ref, Mapping) and not ref:
            return  # free-form mapping (never at the top level)
        if prefix and ref is None:  # an unset value in base: it takes a value, not keys
            problems.extend((f"{prefix}{key}", []) for key in node)
            return
        if not isinstance(ref, Mapping):
            return  # a leaf in base may be replaced by any structure
        for key, value in node.items():
            path = f"{prefix}{key}"
            if key not in ref:
                problems.append((path, sorted(str(k) for k in ref)))
                continue
            if isinstance(value, Mapping):
                visit(value, ref[key], path + ".")

    visit(params, reference, "")
    return problems


def check_parameters(params: Mapping[str, Any], conf_base: Path, env: str | None) -> None:
    """Raise :class:`UnknownParameterError` listing every unknown key with suggestions."""
    reference = load_base_parameters(conf_base)
    problems = unknown_parameter_keys(params, reference)
    if not problems:
        return
    keys = ", ".join(f"'{key}'" for key, _ in problems)
    lines = [
        f"  - {unknown_key_message(key, valid)}"
        if valid
        else f"  - {key} is not a known key: {key.rsplit('.', 1)[0]} takes a single value "
        "(it is null in conf/base), not a mapping"
        for key, valid in problems
    ]
    raise UnknownParameterError(
        f"unknown parameter key(s) {keys} in environment '{env or DEFAULT_ENV}' or --params "
        f"(every key must exist in {conf_base}/parameters_*.yml):\n" + "\n".join(lines)
    )
