"""Strict parameter checking: every key a run uses must be a key that ``conf/base`` defines.

``conf/base/parameters_*.yml`` is the reference of every parameter and its default. Other
environments (``conf/test``, ``conf/gpu``, ``conf/local``) and ``kedro run --params`` may only
override keys that exist there, so a misspelled key is an error before any node runs, not a
silently ignored setting. A mapping that is empty (``{}``) or ``null`` in ``conf/base`` is
free-form: any keys may go below it (for example per-channel value ranges).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml


class UnknownParameterError(ValueError):
    """A parameter key is not defined in ``conf/base``."""


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
        if prefix and (ref is None or (isinstance(ref, Mapping) and not ref)):
            return  # free-form mapping (never at the top level)
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
    lines = []
    for key, valid in problems:
        leaf = key.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(leaf, valid, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        lines.append(f"  - '{key}' is not a known parameter{hint} valid keys here: {valid}")
    raise UnknownParameterError(
        f"unknown parameter key(s) in environment '{env or 'local'}' or --params "
        f"(every key must exist in {conf_base}/parameters_*.yml):\n" + "\n".join(lines)
    )
