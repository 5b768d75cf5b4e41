"""The compression comparison contract: one frozen table of typed rows, its gate rule, its forms.

``rpt_compression_comparison`` crosses pipelines (compression writes it, promotion registers from
it), so it has exactly one parser, :meth:`ComparisonTable.from_json`, and one writer,
:meth:`ComparisonTable.to_json` (files: :meth:`ComparisonTable.load` / :meth:`ComparisonTable.save`).
This module imports neither torch nor Kedro, so the registry can read the table cheaply.

Direction of the numbers: ``accuracy`` and ``macro_f1`` are in [0, 1], higher is better;
``delta_points`` is ``100 * (accuracy - reference accuracy)`` on the *same* test series
(negative = worse than fp32 torch). Every row carries the paired comparison with the reference:
``fidelity`` (share of series whose predicted class equals fp32's), ``right_to_wrong`` /
``wrong_to_right`` (series the reference got right and the variant wrong, and the reverse), a
paired-bootstrap 95% interval of ``delta_points`` and the exact one-sided McNemar p-value of
"the variant is less accurate".

**Gate rule** (:func:`gate_verdict`): a variant FAILS when its accuracy drop is larger than the
limit of its gate family **and** the exact McNemar test says the loss is real
(``p < gates.alpha``). One series flipped out of 40 (2.5 points, p = 0.5) therefore passes a
1-point gate, while a variant that really lost accuracy (on 40 series: 5 or more net losses
without a single gain, p = 0.031) fails. On large test sets the rule tends to the plain limit.
The reference row is not gated; a row without an ONNX file is never registrable.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sensorops.atomic import atomic_write_text
from sensorops.modeling.config import VARIANT_GATE, VARIANTS, GateConfig
from sensorops.modeling.errors import GateError, ModelingError

REFERENCE = "fp32_torch"
#: Slack when comparing an accuracy drop with its limit (floating-point noise of 100 * delta).
GATE_EPS = 1e-9
#: Name of the artifact in error messages.
ARTIFACT = "rpt_compression_comparison"


# ---------------------------------------------------------------------------------------------
# paired statistics


def mcnemar_exact_loss_p(right_to_wrong: int, wrong_to_right: int) -> float:
    """Exact one-sided McNemar p-value of "the variant is less accurate than the reference".

    Under H0 (equal accuracy) each of the ``n = b + c`` discordant series is equally likely to
    go either way, so ``p = P(Binomial(n, 1/2) >= b)`` with ``b = right_to_wrong``. No
    discordant series gives ``p = 1``.
    """
    b, c = int(right_to_wrong), int(wrong_to_right)
    if b < 0 or c < 0:
        raise ModelingError(f"flip counts must be >= 0; got {b} and {c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(b, n + 1))
    return float(min(1.0, tail / 2.0**n))


@dataclass(frozen=True)
class PairedComparison:
    """A variant against the reference on the same test series.

    Attributes:
        n_series: test series compared.
        delta_points: ``100 * (accuracy - reference accuracy)``.
        ci_low_points / ci_high_points: paired-bootstrap interval of ``delta_points``
            (series resampled with replacement, both models on the same resample).
        fidelity: share of series with the same predicted class as the reference, in [0, 1].
        right_to_wrong / wrong_to_right: series the variant lost / gained against the reference.
        mcnemar_p: :func:`mcnemar_exact_loss_p` of the two flip counts.
    """

    n_series: int
    delta_points: float
    ci_low_points: float
    ci_high_points: float
    fidelity: float
    right_to_wrong: int
    wrong_to_right: int
    mcnemar_p: float


def paired_comparison(
    y_true: np.ndarray,
    reference_pred: np.ndarray,
    pred: np.ndarray,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Paired comparison of ``pred`` with ``reference_pred`` (class codes, same series order).

    Raises:
        ModelingError: the three arrays differ in length or are empty.
    """
    y_true, reference_pred, pred = (np.asarray(a).ravel() for a in (y_true, reference_pred, pred))
    if not (len(y_true) == len(reference_pred) == len(pred)) or len(y_true) == 0:
        raise ModelingError(
            "paired comparison needs y_true, reference and variant predictions of one non-empty "
            f"length; got {len(y_true)}, {len(reference_pred)} and {len(pred)}"
        )
    ref_ok = reference_pred == y_true
    var_ok = pred == y_true
    diff = var_ok.astype(np.float64) - ref_ok.astype(np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(int(n_resamples), len(diff)))
    boot = 100.0 * diff[idx].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(boot, [tail, 100.0 - tail])
    b = int(np.sum(ref_ok & ~var_ok))
    c = int(np.sum(~ref_ok & var_ok))
    return PairedComparison(
        n_series=len(diff),
        delta_points=float(100.0 * diff.mean()),
        ci_low_points=float(lo),
        ci_high_points=float(hi),
        fidelity=float(np.mean(pred == reference_pred)),
        right_to_wrong=b,
        wrong_to_right=c,
        mcnemar_p=mcnemar_exact_loss_p(b, c),
    )


def gate_verdict(
    name: str, paired: PairedComparison | None, gates: GateConfig
) -> tuple[str, float | None, bool | None]:
    """``(gate family, limit in points, passed)`` of a variant (module docstring: the rule).

    The reference (``paired`` may be ``None``) is not gated: ``(“reference”, None, None)``.
    """
    if name not in VARIANT_GATE:
        raise GateError(f"unknown variant name {name!r}; valid names are {list(VARIANTS)}")
    family = VARIANT_GATE[name]
    if family == "reference":
        return family, None, None
    if paired is None:
        raise GateError(f"variant {name!r} needs its paired comparison with {REFERENCE!r}")
    limit = float(getattr(gates, family))
    drop = -paired.delta_points
    clearly_worse = drop > limit + GATE_EPS and paired.mcnemar_p < gates.alpha
    return family, limit, not clearly_worse


# ---------------------------------------------------------------------------------------------
# measured facts (before gating)


@dataclass
class VariantResult:
    """Measured facts about one variant (before gating).

    Attributes:
        name: one of :data:`~sensorops.modeling.config.VARIANTS`.
        runtime: ``"torch"`` or ``"onnxruntime"``.
        onnx_path: the variant's ONNX file (``None`` for ``fp32_torch``).
        execution_provider: provider that ran the evaluation (read back from the session).
        accuracy / macro_f1: on the test split, in [0, 1].
        size_bytes: ONNX file size (state-dict size for ``fp32_torch``); the table's
            ``size_ratio`` divides it by the ``fp32_onnx`` size (the reference size without one).
        params: parameter count of the torch model the variant was built from.
        sparsity: share of exact zeros among its weight matrices.
        predictions: predicted class code per test series (the paired comparison needs them).
        latency: ``{"p50_ms_b1": ..., "p99_ms_b1": ..., "throughput_b1": ..., ...}``.
        finetune_steps: optimizer steps the variant was fine-tuned for (0 = none).
        notes: free text (what is quantized, parity numbers...).
    """

    name: str
    runtime: str
    onnx_path: str | None
    execution_provider: str
    accuracy: float
    macro_f1: float
    size_bytes: int
    params: int
    sparsity: float
    predictions: np.ndarray | None = None
    latency: dict[str, float] = field(default_factory=dict)
    finetune_steps: int = 0
    notes: str = ""

    def __post_init__(self) -> None:
        if self.name not in VARIANTS:
            raise ModelingError(
                f"unknown variant name {self.name!r}; valid names are {list(VARIANTS)}"
            )


# ---------------------------------------------------------------------------------------------
# the contract


def _sha256(path: str | None) -> str | None:
    """Content hash of a variant's ONNX file (None without a file)."""
    if path is None or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _err(where: str, message: str) -> ModelingError:
    return ModelingError(f"{ARTIFACT} {where}: {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class ComparisonRow:
    """One gated variant of the comparison (all columns typed; see the module docstring).

    ``latency`` maps ``p50_ms_b<batch>``, ``p99_ms_b<batch>``, ``throughput_b<batch>`` to their
    values; in the JSON/CSV form they are flat columns of the row.
    """

    name: str
    runtime: str
    onnx_path: str | None
    execution_provider: str
    accuracy: float
    macro_f1: float
    delta_points: float
    macro_f1_delta_points: float
    ci_low_points: float | None
    ci_high_points: float | None
    mcnemar_p: float | None
    fidelity: float
    right_to_wrong: int
    wrong_to_right: int
    n_series: int
    size_bytes: int
    size_ratio: float
    params: int
    params_ratio: float
    sparsity: float
    finetune_steps: int
    gate: str
    gate_limit_points: float | None
    gate_passed: bool | None
    registrable: bool
    notes: str = ""
    latency: Mapping[str, float] = field(default_factory=dict)
    onnx_sha256: str | None = None
    """sha256 of ``onnx_path`` as the comparison scored it; promotion refuses a swapped file."""

    # the columns whose JSON value may be null, and those that are plain text
    _OPTIONAL = frozenset(
        {
            "onnx_path",
            "ci_low_points",
            "ci_high_points",
            "mcnemar_p",
            "gate_limit_points",
            "onnx_sha256",
        }
    )
    _TEXT = frozenset({"name", "runtime", "execution_provider", "gate", "notes", "onnx_sha256"})
    _INT = frozenset(
        {"right_to_wrong", "wrong_to_right", "n_series", "size_bytes", "params", "finetune_steps"}
    )

    @property
    def columns(self) -> dict[str, Any]:
        """Every column but ``name``, ``onnx_path``, ``gate_passed`` and ``registrable``
        (latencies flat); the registry turns them into ``compression.*`` tags."""
        out = self.to_dict()
        for key in ("name", "onnx_path", "gate_passed", "registrable"):
            out.pop(key)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON row: every field, latencies as flat columns."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "latency"}
        out.update(self.latency)
        return out

    @classmethod
    def from_dict(cls, data: Any, index: int = 0) -> ComparisonRow:
        """Strict inverse of :meth:`to_dict`; the error names the row and the key.

        Raises:
            ModelingError: not a mapping, no ``name``, a missing or mistyped column, or a
                column that is neither a field nor a latency.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            raise ModelingError(
                f"{ARTIFACT} variants[{index}] needs a non-empty string 'name'; got {data!r}"
            )
        name = data["name"]
        if not name:
            raise ModelingError(
                f"{ARTIFACT} variants[{index}] needs a non-empty string 'name'; got ''"
            )
        where = f"variant {name!r}"
        if data.get("gate_passed") is not None and not isinstance(data["gate_passed"], bool):
            raise _err(
                where, f"'gate_passed' must be true, false or null; got {data['gate_passed']!r}"
            )
        if "registrable" in data and not isinstance(data["registrable"], bool):
            raise _err(where, f"'registrable' must be true or false; got {data['registrable']!r}")
        known = {f.name for f in fields(cls)} - {"latency"}
        latency: dict[str, float] = {}
        for key, value in data.items():
            if key in known:
                continue
            if key.startswith(("p50_ms_b", "p99_ms_b", "throughput_b")):
                if not _is_number(value):
                    raise _err(where, f"latency column {key!r} must be a number; got {value!r}")
                latency[key] = float(value)
                continue
            raise _err(where, f"unknown column {key!r}; valid columns are {sorted(known)}")
        missing = sorted(k for k in known if k not in data and k not in ("notes", "onnx_sha256"))
        if missing:
            raise _err(where, f"lacks column(s) {missing}")
        kwargs: dict[str, Any] = {"latency": latency}
        for key in known:
            value = data.get(key, None if key == "onnx_sha256" else "")
            if value is None and key in cls._OPTIONAL:
                kwargs[key] = None
            elif key == "gate_passed":
                kwargs[key] = value
            elif key == "registrable":
                kwargs[key] = bool(value)
            elif key in cls._TEXT or key == "onnx_path":
                if not isinstance(value, str):
                    raise _err(where, f"{key!r} must be a string; got {value!r}")
                kwargs[key] = value
            elif key in cls._INT:
                if not _is_number(value) or float(value) != int(value):
                    raise _err(where, f"{key!r} must be an integer; got {value!r}")
                kwargs[key] = int(value)
            else:
                if not _is_number(value):
                    raise _err(where, f"{key!r} must be a number; got {value!r}")
                kwargs[key] = float(value)
        return cls(**kwargs)


@dataclass(frozen=True)
class ComparisonTable:
    """Gated rows in :data:`VARIANTS` order (see :func:`build_comparison`)."""

    rows: tuple[ComparisonRow, ...]
    gates: Mapping[str, float]
    reference: str = REFERENCE

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", tuple(self.rows))
        object.__setattr__(self, "gates", dict(self.gates))

    @property
    def registrable(self) -> list[str]:
        return [r.name for r in self.rows if r.registrable]

    def row(self, name: str) -> ComparisonRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise ModelingError(
            f"{ARTIFACT} has no variant {name!r}; it has {[r.name for r in self.rows]}"
        )

    def to_json(self) -> dict[str, Any]:
        """``{"reference", "gates", "registrable", "variants": [row, ...]}`` (promotion reads this)."""
        return {
            "reference": self.reference,
            "gates": dict(self.gates),
            "registrable": self.registrable,
            "variants": [r.to_dict() for r in self.rows],
        }

    @classmethod
    def from_json(cls, data: Any) -> ComparisonTable:
        """The one parser of ``rpt_compression_comparison`` (inverse of :meth:`to_json`).

        Raises:
            ModelingError: ``data`` is not the mapping above, or a row is malformed (the message
                names the row and the column).
        """
        if (
            not isinstance(data, Mapping)
            or not isinstance(data.get("variants"), list)
            or not isinstance(data.get("gates", {}), Mapping)
        ):
            got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ModelingError(
                f"{ARTIFACT} must be the compression pipeline's mapping "
                "{'reference', 'gates', 'registrable', 'variants': [row, ...]} (it needs "
                f"a 'variants' list and a 'gates' mapping); got "
                f"{'keys ' if isinstance(data, Mapping) else ''}{got}"
            )
        rows = tuple(ComparisonRow.from_dict(r, i) for i, r in enumerate(data["variants"]))
        names = [r.name for r in rows]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ModelingError(f"{ARTIFACT} lists variant(s) {dup} more than once")
        return cls(
            rows=rows, gates=data.get("gates", {}), reference=str(data.get("reference", REFERENCE))
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON form atomically."""
        atomic_write_text(path, json.dumps(self.to_json(), indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ComparisonTable:
        """Read a file written by :meth:`save` (errors name the file)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelingError(f"cannot read {ARTIFACT} from {path}: {exc}") from exc
        try:
            return cls.from_json(data)
        except ModelingError as exc:
            raise ModelingError(f"{path}: {exc}") from None

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.to_dict() for r in self.rows])

    def to_markdown(self) -> str:
        return comparison_markdown(self)

    def metrics(self) -> dict[str, dict[str, float | int]]:
        """MLflow metrics (``MlflowMetricsHistoryDataset`` form): accuracy, size, latency per variant."""
        out: dict[str, dict[str, float | int]] = {}
        keys = (
            "accuracy",
            "macro_f1",
            "delta_points",
            "fidelity",
            "right_to_wrong",
            "wrong_to_right",
            "size_bytes",
            "params",
            "sparsity",
        )
        for row in self.rows:
            for key in keys:
                out[f"compression.{row.name}.{key}"] = {
                    "value": float(getattr(row, key)),
                    "step": 0,
                }
            if row.mcnemar_p is not None:
                out[f"compression.{row.name}.mcnemar_p"] = {"value": row.mcnemar_p, "step": 0}
            for key, value in row.latency.items():
                if key.startswith(("p50_ms_", "p99_ms_")):
                    out[f"compression.{row.name}.{key}"] = {"value": float(value), "step": 0}
            if row.gate_passed is not None:
                out[f"compression.{row.name}.gate_passed"] = {
                    "value": float(row.gate_passed),
                    "step": 0,
                }
        return out


def build_comparison(
    results: Sequence[VariantResult],
    gates: GateConfig,
    y_true: np.ndarray,
) -> ComparisonTable:
    """Pair every result with the ``fp32_torch`` row on ``y_true``, gate it, order as :data:`VARIANTS`.

    Raises:
        ModelingError: no ``fp32_torch`` result, a variant appears twice, or a result lacks its
            predictions.
    """
    by_name: dict[str, VariantResult] = {}
    for res in results:
        if res.name in by_name:
            raise ModelingError(f"variant {res.name!r} appears twice in the comparison")
        if res.predictions is None:
            raise ModelingError(f"variant {res.name!r} has no test predictions to pair")
        by_name[res.name] = res
    if REFERENCE not in by_name:
        raise ModelingError(
            f"the comparison needs the reference variant {REFERENCE!r}; got {sorted(by_name)}"
        )
    ref = by_name[REFERENCE]
    size_base = by_name["fp32_onnx"].size_bytes if "fp32_onnx" in by_name else ref.size_bytes
    rows = []
    for name in VARIANTS:
        if name not in by_name:
            continue
        res = by_name[name]
        paired = paired_comparison(
            y_true,
            ref.predictions,  # type: ignore[arg-type]
            res.predictions,  # type: ignore[arg-type]
            n_resamples=gates.bootstrap_resamples,
            confidence=gates.confidence,
            seed=gates.bootstrap_seed,
        )
        family, limit, passed = gate_verdict(name, None if name == REFERENCE else paired, gates)
        is_ref = name == REFERENCE
        rows.append(
            ComparisonRow(
                name=name,
                runtime=res.runtime,
                onnx_path=res.onnx_path,
                execution_provider=res.execution_provider,
                accuracy=float(res.accuracy),
                macro_f1=float(res.macro_f1),
                delta_points=100.0 * (res.accuracy - ref.accuracy),
                macro_f1_delta_points=100.0 * (res.macro_f1 - ref.macro_f1),
                ci_low_points=None if is_ref else paired.ci_low_points,
                ci_high_points=None if is_ref else paired.ci_high_points,
                mcnemar_p=None if is_ref else paired.mcnemar_p,
                fidelity=paired.fidelity,
                right_to_wrong=paired.right_to_wrong,
                wrong_to_right=paired.wrong_to_right,
                n_series=paired.n_series,
                size_bytes=int(res.size_bytes),
                size_ratio=res.size_bytes / size_base if size_base else math.nan,
                params=int(res.params),
                params_ratio=res.params / ref.params if ref.params else math.nan,
                sparsity=float(res.sparsity),
                finetune_steps=int(res.finetune_steps),
                gate=family,
                gate_limit_points=limit,
                gate_passed=passed,
                registrable=bool(passed) and res.onnx_path is not None,
                notes=res.notes,
                latency=dict(res.latency),
                onnx_sha256=_sha256(res.onnx_path),
            )
        )
    return ComparisonTable(rows=tuple(rows), gates=gates.model_dump())


# ---------------------------------------------------------------------------------------------
# forms


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "pass" if value else "**FAIL**"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}g}"
    return str(value)


def gate_rule_text(gates: Mapping[str, Any]) -> str:
    """The gate rule in one paragraph (the Markdown report and the README use it)."""
    alpha = gates.get("alpha", 0.05)
    return (
        "A variant **fails** its gate when its accuracy drop versus fp32 torch on the same test "
        "series is larger than its limit **and** the exact one-sided McNemar test on the flipped "
        f"series says the loss is real (p < {alpha}). A single flipped series out of 40 (2.5 "
        "points, p = 0.5) passes; a variant that clearly lost accuracy fails. Failing variants "
        "are never offered for registration."
    )


def comparison_markdown(table: ComparisonTable) -> str:
    """A Markdown table (one row per variant) with a legend and the gate rule."""
    lat_cols = sorted(
        {k for r in table.rows for k in r.latency if k.startswith(("p50_ms_", "p99_ms_"))},
        key=lambda k: (int(k.rsplit("_b", 1)[1]), k),
    )
    head = [
        "name",
        "accuracy",
        "delta (points)",
        "95% CI (points)",
        "McNemar p",
        "fidelity",
        "flips R→W / W→R",
        "size ratio",
        "params ratio",
        "sparsity",
        "fine-tune steps",
        *lat_cols,
        "limit (points)",
        "gate",
        "registrable",
    ]
    lines = [
        "# Compression comparison",
        "",
        f"Reference: `{table.reference}`. `delta` = 100 × (accuracy − reference accuracy) on the "
        "same test series; the interval is a paired bootstrap; fidelity is the share of series "
        "predicted as fp32 predicts them; flips count series right→wrong and wrong→right "
        "against fp32. `size ratio` is relative to the fp32 ONNX file. Latencies are ONNX "
        "Runtime (torch eager for the reference) per call in ms at the batch size in the name.",
        "",
        "Gate rule: " + gate_rule_text(table.gates),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for r in table.rows:
        ci = (
            "–"
            if r.ci_low_points is None or r.ci_high_points is None
            else f"[{r.ci_low_points:+.1f}, {r.ci_high_points:+.1f}]"
        )
        cells = [
            r.name,
            f"{r.accuracy:.4f}",
            f"{r.delta_points:+.1f}",
            ci,
            _fmt(r.mcnemar_p, 3),
            f"{100 * r.fidelity:.1f}%",
            f"{r.right_to_wrong} / {r.wrong_to_right}",
            _fmt(r.size_ratio, 3),
            _fmt(r.params_ratio, 3),
            _fmt(r.sparsity, 3),
            str(r.finetune_steps),
            *[_fmt(r.latency.get(c)) for c in lat_cols],
            _fmt(r.gate_limit_points),
            _fmt(r.gate_passed),
            "yes" if r.registrable else "no",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- `{r.name}`: {r.notes}" for r in table.rows if r.notes]
    if notes:
        lines += ["", "## Notes", "", *notes]
    return "\n".join(lines) + "\n"


def write_comparison(
    table: ComparisonTable,
    csv_path: str | os.PathLike[str],
    markdown_path: str | os.PathLike[str],
    json_path: str | os.PathLike[str],
) -> None:
    """Write the CSV, Markdown and JSON forms atomically (for use outside Kedro)."""
    atomic_write_text(csv_path, table.to_frame().to_csv(index=False))
    atomic_write_text(markdown_path, table.to_markdown())
    table.save(json_path)


def result_to_dict(result: VariantResult) -> dict[str, Any]:
    out = asdict(result)
    if result.predictions is not None:
        out["predictions"] = [int(p) for p in result.predictions]
    return out


def result_from_dict(data: dict[str, Any]) -> VariantResult:
    """Inverse of :func:`result_to_dict` (validates the name)."""
    data = dict(data)
    if data.get("predictions") is not None:
        data["predictions"] = np.asarray(data["predictions"], dtype=np.int64)
    return VariantResult(**data)
