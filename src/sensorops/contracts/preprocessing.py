"""The preprocessing contract: everything that turns a raw series into model input.

A :class:`PreprocessingState` holds what ingestion fitted on the training split, in the form the
serving side needs it:

- the outlier repair (the fitted :class:`~sensorops.timeseries.outliers.OutlierFilter`: NaN
  interpolation and spike repair with its per-channel IForests), or plain NaN interpolation when
  outlier handling was disabled;
- the DTW references with their band (or the linear-resampling length when alignment was off);
- the per-channel normalization statistics.

It is built from the artifacts ingestion already writes to ``data/06_models``
(``ingestion_outlier_filter.pkl``, ``dtw_references.json``, ``normalization_stats.json``) and
runs the very code the pipeline runs (:mod:`sensorops.timeseries`), so a raw series scored by the
service goes through the same repair, alignment and scaling as the training data did.

One format, one ``save``/``load`` pair: a directory with ``preprocessing.json`` (settings and
statistics), ``references.npz`` (float64 templates, no pickle) and, when outlier repair is on,
``outlier_filter.pkl`` (pyod/sklearn objects; a local artifact of the project's own runs, never
loaded from an untrusted source).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sensorops.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from sensorops.timeseries.alignment import SeriesAligner, resample_all
from sensorops.timeseries.config import AlignmentConfig, DTWConfig
from sensorops.timeseries.outliers import OutlierFilter, interpolate_nans
from sensorops.timeseries.series import SeriesSet, to_padded

FORMAT_VERSION = 1
STATE_FILE = "preprocessing.json"
REFERENCES_FILE = "references.npz"
FILTER_FILE = "outlier_filter.pkl"


class PreprocessingError(ValueError):
    """A preprocessing artifact is missing, corrupt or inconsistent (names the file and key)."""


class InputError(ValueError):
    """A raw series breaks the input contract.

    Attributes:
        field: the offending field, e.g. ``instances[2].data`` or ``channels``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class AlignmentState:
    """How series are brought to the model's fixed length.

    Attributes:
        method: ``dtw`` (DTW onto the least-cost reference) or ``linear_resample``.
        reference_length: the model's time length.
        reference_names: one name per reference (class label, or ``__global__``).
        references: ``(n_references, reference_length, n_channels)`` float64 (empty for
            ``linear_resample``).
        dtw: the DTW band (window kind and radius / Itakura slope) the references were used with.
    """

    method: Literal["dtw", "linear_resample"]
    reference_length: int
    reference_names: tuple[str, ...] = ()
    references: np.ndarray = field(default_factory=lambda: np.empty((0, 0, 0)))
    dtw: DTWConfig = field(default_factory=DTWConfig)


@dataclass(frozen=True)
class PreprocessingState:
    """Frozen preprocessing of one trained model (raw series -> model input).

    Attributes:
        channels: channel names, the order of the last axis of every array.
        classes: class names; output column ``k`` of the model is ``classes[k]``.
        min_length: shortest accepted raw series (steps).
        outlier_filter: the fitted filter, or None (outlier handling disabled: NaN fill only).
        alignment: see :class:`AlignmentState`.
        mean: ``(n_channels,)`` float64 training mean per channel.
        std: ``(n_channels,)`` float64 training standard deviation per channel (eps-floored).
    """

    channels: tuple[str, ...]
    classes: tuple[str, ...]
    min_length: int
    outlier_filter: OutlierFilter | None
    alignment: AlignmentState
    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.channels)
        if n == 0 or len(self.classes) < 2:
            raise PreprocessingError(
                f"preprocessing needs >= 1 channel and >= 2 classes; got {n} channel(s), "
                f"{len(self.classes)} class(es)"
            )
        for name in ("mean", "std"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (n,):
                raise PreprocessingError(
                    f"normalization {name} has shape {arr.shape}; expected ({n},) for channels "
                    f"{list(self.channels)}"
                )
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        refs = np.asarray(self.alignment.references, dtype=np.float64)
        if self.alignment.method == "dtw" and (
            refs.ndim != 3 or refs.shape[1:] != (self.alignment.reference_length, n)
        ):
            raise PreprocessingError(
                f"DTW references have shape {refs.shape}; expected (n_references, "
                f"{self.alignment.reference_length}, {n})"
            )
        refs.setflags(write=False)
        object.__setattr__(self.alignment, "references", refs)
        if self.outlier_filter is not None and self.outlier_filter.n_channels_ != n:
            raise PreprocessingError(
                f"outlier filter was fitted on {self.outlier_filter.n_channels_} channels; "
                f"the state has {n}"
            )

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def length(self) -> int:
        """Time length of the model input."""
        return self.alignment.reference_length

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def from_artifacts(
        cls,
        outlier_model: dict[str, Any] | None,
        dtw_references: dict[str, Any],
        normalization_stats: dict[str, Any],
        classes: Sequence[str],
        channels: Sequence[str] | None = None,
        min_length: int = 4,
    ) -> PreprocessingState:
        """Build the state from what ingestion writes to ``data/06_models``.

        Args:
            outlier_model: ``mdl_outlier_filter`` (``{"config": ..., "filter": OutlierFilter |
                None}``), or None for NaN interpolation only.
            dtw_references: ``mdl_dtw_references`` (the ``alignment`` metadata: method,
                reference_length, dtw_window, sakoe_chiba_radius, itakura_max_slope, references).
            normalization_stats: ``mdl_normalization_stats`` (``{"channels": {ch: {mean, std}}}``).
            classes: class names in code order (``mi_model_input.classes``).
            channels: channel order (default: the order of the normalization statistics).
            min_length: shortest accepted raw series (the ingestion contract's ``min_length``).

        Raises:
            PreprocessingError: an artifact lacks a key or disagrees with another one.
        """
        stats = normalization_stats.get("channels")
        if not isinstance(stats, dict) or not stats:
            raise PreprocessingError(
                "normalization_stats.json needs a non-empty 'channels' mapping "
                f"{{channel: {{mean, std}}}}; got keys {sorted(normalization_stats)}"
            )
        channels = tuple(str(c) for c in (channels if channels is not None else stats))
        missing = [c for c in channels if c not in stats]
        if missing:
            raise PreprocessingError(
                f"normalization_stats.json lacks channel(s) {missing}; it has {list(stats)}"
            )
        mean = np.array([float(stats[c]["mean"]) for c in channels])
        std = np.array([float(stats[c]["std"]) for c in channels])
        alignment = _alignment_from_metadata(dtw_references)
        filt = None
        if outlier_model is not None:
            if not isinstance(outlier_model, dict) or "filter" not in outlier_model:
                raise PreprocessingError(
                    "ingestion_outlier_filter.pkl must hold {'config': ..., 'filter': "
                    f"OutlierFilter | None}}; got {type(outlier_model).__name__}"
                )
            filt = outlier_model["filter"]
            if filt is not None and not isinstance(filt, OutlierFilter):
                raise PreprocessingError(
                    "ingestion_outlier_filter.pkl 'filter' must be an OutlierFilter or None; "
                    f"got {type(filt).__name__}"
                )
        return cls(
            channels=channels,
            classes=tuple(str(c) for c in classes),
            min_length=int(min_length),
            outlier_filter=filt,
            alignment=alignment,
            mean=mean,
            std=std,
        )

    @classmethod
    def from_models_dir(
        cls, models_dir: str | Path, classes: Sequence[str], min_length: int = 4
    ) -> PreprocessingState:
        """:meth:`from_artifacts` over the files in ``models_dir`` (``data/06_models``)."""
        models_dir = Path(models_dir)
        paths = {
            "filter": models_dir / "ingestion_outlier_filter.pkl",
            "refs": models_dir / "dtw_references.json",
            "stats": models_dir / "normalization_stats.json",
        }
        absent = [str(p) for p in paths.values() if not p.is_file()]
        if absent:
            raise PreprocessingError(
                f"preprocessing artifact(s) {absent} do not exist; run the ingestion pipeline first"
            )
        with open(paths["filter"], "rb") as fh:
            outlier_model = pickle.load(fh)  # the project's own artifact
        return cls.from_artifacts(
            outlier_model,
            json.loads(paths["refs"].read_text()),
            json.loads(paths["stats"].read_text()),
            classes=classes,
            min_length=min_length,
        )

    # --- persistence ------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the state into directory ``path`` (created); each file is written atomically."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        a = self.alignment
        doc = {
            "format_version": FORMAT_VERSION,
            "channels": list(self.channels),
            "classes": list(self.classes),
            "min_length": self.min_length,
            "outlier_repair": "outlier_filter" if self.outlier_filter is not None else "nan_fill",
            "alignment": {
                "method": a.method,
                "reference_length": a.reference_length,
                "reference_names": list(a.reference_names),
                "dtw": a.dtw.model_dump(),
            },
            "normalization": {
                "mean": self.mean.tolist(),
                "std": self.std.tolist(),
            },
        }
        with atomic_path(path / REFERENCES_FILE, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, references=np.asarray(a.references, dtype=np.float64))
        if self.outlier_filter is not None:
            atomic_write_bytes(path / FILTER_FILE, pickle.dumps(self.outlier_filter))
        atomic_write_text(path / STATE_FILE, json.dumps(doc, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> PreprocessingState:
        """Read a state written by :meth:`save`.

        Raises:
            PreprocessingError: a file is missing or its format version is unknown.
        """
        path = Path(path)
        state_file = path / STATE_FILE
        if not state_file.is_file():
            raise PreprocessingError(f"{state_file} does not exist; not a preprocessing state")
        doc = json.loads(state_file.read_text())
        if doc.get("format_version") != FORMAT_VERSION:
            raise PreprocessingError(
                f"{state_file}: format_version must be {FORMAT_VERSION}; got "
                f"{doc.get('format_version')!r}"
            )
        with np.load(path / REFERENCES_FILE, allow_pickle=False) as npz:
            refs = np.array(npz["references"], dtype=np.float64)
        filt = None
        if doc["outlier_repair"] == "outlier_filter":
            with open(path / FILTER_FILE, "rb") as fh:
                filt = pickle.load(fh)  # the project's own artifact
        a = doc["alignment"]
        return cls(
            channels=tuple(doc["channels"]),
            classes=tuple(doc["classes"]),
            min_length=int(doc["min_length"]),
            outlier_filter=filt,
            alignment=AlignmentState(
                method=a["method"],
                reference_length=int(a["reference_length"]),
                reference_names=tuple(a["reference_names"]),
                references=refs,
                dtw=DTWConfig(**a["dtw"]),
            ),
            mean=np.asarray(doc["normalization"]["mean"]),
            std=np.asarray(doc["normalization"]["std"]),
        )

    # --- the transform ------------------------------------------------------------------------------

    def check(
        self,
        values: Sequence[Any],
        field: str = "instances",
        max_nan_run: int | None = None,
        index: bool = True,
    ) -> list[np.ndarray]:
        """Validate raw series at the boundary; return float64 ``(length_i, n_channels)`` arrays.

        Args:
            values: raw series, each ``(length_i, n_channels)`` (time first).
            field: name of the field for error messages (``[i]`` is appended when ``index``).
            max_nan_run: longest accepted run of consecutive NaNs in one channel (None: any
                run, as long as no channel is entirely NaN).

        Raises:
            InputError: wrong dtype or rank, wrong channel count, too short, a channel entirely
                NaN, or an infinite value; the message names ``field[i]``.
        """
        out = []
        for i, raw in enumerate(values):
            where = f"{field}[{i}]" if index else field
            try:
                arr = np.asarray(raw)
            except (TypeError, ValueError) as exc:
                raise InputError(where, f"must be a numeric (time, channels) array: {exc}") from exc
            if arr.dtype == object or not (
                np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
            ):
                raise InputError(
                    where,
                    f"must hold numbers (float or int); got dtype {arr.dtype} (ragged rows or "
                    "strings?)",
                )
            if arr.ndim != 2:
                raise InputError(
                    where, f"must be 2-D (time, channels); got shape {tuple(arr.shape)}"
                )
            if arr.shape[1] != self.n_channels:
                raise InputError(
                    where,
                    f"has {arr.shape[1]} channels; expected {self.n_channels} "
                    f"({list(self.channels)})",
                )
            if arr.shape[0] < self.min_length:
                raise InputError(
                    where, f"has {arr.shape[0]} time steps; expected at least {self.min_length}"
                )
            arr = arr.astype(np.float64)
            if np.isinf(arr).any():
                raise InputError(where, "contains an infinite value")
            nan = np.isnan(arr)
            if nan.all(axis=0).any():
                bad = [self.channels[k] for k in np.flatnonzero(nan.all(axis=0))]
                raise InputError(where, f"channel(s) {bad} are entirely NaN")
            if max_nan_run is not None and nan.any():
                runs = _longest_runs(nan)
                if runs.max() > max_nan_run:
                    k = int(runs.argmax())
                    raise InputError(
                        where,
                        f"channel {self.channels[k]!r} has a run of {int(runs[k])} consecutive NaNs; "
                        f"at most {max_nan_run} can be repaired",
                    )
            out.append(arr)
        return out

    def transform(self, values: Sequence[np.ndarray]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Repair, align and normalize checked raw series (:meth:`check` output).

        Returns:
            ``(X, info)``: ``(n_series, length, n_channels)`` float32 model input, and per series
            ``{"length", "nans_filled", "points_repaired", "reference", "alignment_cost"}``.
        """
        values = list(values)
        n = len(values)
        if n == 0:
            return np.empty((0, self.length, self.n_channels), np.float32), []
        # 1. repair: the fitted filter's NaN + spike repair (OutlierFilter.repair, the code
        #    OutlierFilter.transform runs), its point IForests compiled (same scores)
        if self.outlier_filter is not None:
            lengths = np.array([len(v) for v in values])
            block = np.full((n, int(lengths.max()), self.n_channels), np.nan, dtype=np.float64)
            points, nans = self._fast_filter().repair(values, block)
            repaired = [block[i, :m] for i, m in enumerate(lengths)]
            padded = block
        else:
            filled = [interpolate_nans(v) for v in values]
            repaired = [f for f, _ in filled]
            nans = np.array([k for _, k in filled], dtype=np.int64)
            points = np.zeros(n, dtype=np.int64)
            padded = None
        # 2. align: the pipeline's SeriesAligner over the stored references (or linear resampling)
        a = self.alignment
        if a.method == "dtw":
            series = SeriesSet(
                ids=np.array([str(i) for i in range(n)]),
                labels=np.full(n, "", dtype=object),
                splits=np.full(n, "", dtype=object),
                values=repaired,
                channels=self.channels,
                padded=padded if padded is not None else to_padded(repaired)[0],
            )
            res = self._aligner().transform(series)
            X = res.X.astype(np.float32)
            refs, costs = res.reference.tolist(), res.costs.tolist()
        else:
            X = resample_all(repaired, a.reference_length)
            refs, costs = [""] * n, [float("nan")] * n
        # 3. normalize: ChannelStandardizer.transform with the training statistics
        X = ((X - self.mean) / self.std).astype(np.float32)
        info = [
            {
                "length": len(values[i]),
                "nans_filled": int(nans[i]),
                "points_repaired": int(points[i]),
                "reference": str(refs[i]),
                "alignment_cost": float(costs[i]),
            }
            for i in range(n)
        ]
        return X, info

    def _fast_filter(self) -> OutlierFilter:
        """The outlier filter with compiled point models (built and checked once)."""
        cached = self.__dict__.get("_filter_cache")
        if cached is None:
            cached = compile_outlier_filter(self.outlier_filter)
            object.__setattr__(self, "_filter_cache", cached)
        return cached

    def _aligner(self) -> SeriesAligner:
        cached = self.__dict__.get("_aligner_cache")
        if cached is None:
            a = self.alignment
            cached = SeriesAligner.from_references(
                AlignmentConfig(dtw=a.dtw), a.references, list(a.reference_names)
            )
            object.__setattr__(self, "_aligner_cache", cached)
        return cached


class CompiledIForest:
    """pyod ``IForest.decision_function`` as vectorised numpy, bit-for-bit the same numbers.

    sklearn scores one tree at a time behind joblib (about 120 ms per call for 100 trees, even
    for a handful of points); the service calls the per-channel point models once per batch, so
    that overhead would dominate every request. This walks all trees at once over arrays taken
    from the fitted trees and repeats sklearn's arithmetic in sklearn's order (float32 features,
    ``x <= threshold`` goes left, per-tree ``depth + avg_path_length - 1`` added tree by tree,
    ``2 ** -(depths / (n_trees * c(max_samples)))``, minus ``offset_``, negated by pyod).
    :func:`compile_outlier_filter` checks the equality on sample points before using it.
    """

    def __init__(self, pyod_model: Any) -> None:
        from sklearn.ensemble._iforest import _average_path_length

        det = pyod_model.detector_
        if det._max_features != det.n_features_in_:
            raise PreprocessingError("CompiledIForest needs max_features == n_features")
        trees = [est.tree_ for est in det.estimators_]
        width = max(t.node_count for t in trees)
        T = len(trees)
        self.feature = np.zeros((T, width), dtype=np.int64)
        self.threshold = np.zeros((T, width), dtype=np.float64)
        self.left = np.full((T, width), -1, dtype=np.int64)
        self.right = np.full((T, width), -1, dtype=np.int64)
        self.term = np.zeros((T, width), dtype=np.float64)
        for i, (t, dpl, apl) in enumerate(
            zip(trees, det._decision_path_lengths, det._average_path_length_per_tree, strict=True)
        ):
            n = t.node_count
            self.feature[i, :n] = np.maximum(t.feature, 0)
            self.threshold[i, :n] = t.threshold
            self.left[i, :n] = t.children_left
            self.right[i, :n] = t.children_right
            self.term[i, :n] = dpl + apl - 1.0
        self.denominator = float(T * _average_path_length([det._max_samples])[0])
        self.offset = float(det.offset_)
        self.max_depth = max(t.max_depth for t in trees)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """pyod scores ``(n,)`` for ``X`` ``(n, n_features)``: higher = more anomalous."""
        X32 = np.asarray(X, dtype=np.float32).astype(np.float64)
        n, T = len(X32), self.feature.shape[0]
        trees = np.arange(T)[None, :]
        rows = np.arange(n)[:, None]
        node = np.zeros((n, T), dtype=np.int64)
        for _ in range(self.max_depth + 1):
            left = self.left[trees, node]
            inner = left >= 0
            if not inner.any():
                break
            go_left = X32[rows, self.feature[trees, node]] <= self.threshold[trees, node]
            nxt = np.where(go_left, left, self.right[trees, node])
            node = np.where(inner, nxt, node)
        depths = np.zeros(n)
        for t in range(T):
            depths += self.term[t, node[:, t]]
        if self.denominator != 0:
            ratio = np.divide(depths, self.denominator)
        else:
            ratio = np.ones_like(depths)
        score_samples = -(2 ** (-ratio))
        return (score_samples - self.offset) * -1


def compile_outlier_filter(
    filt: OutlierFilter, check_points: np.ndarray | None = None
) -> OutlierFilter:
    """A copy of ``filt`` whose point models are :class:`CompiledIForest` (same scores, fast).

    Args:
        filt: the fitted filter (not modified).
        check_points: ``(n, 3)`` feature rows on which compiled and original scores must agree
            exactly (default: 2000 seeded normal rows, a tenth of them scaled x20).

    Raises:
        PreprocessingError: a compiled model disagrees with the original one.
    """
    import copy

    if not filt.point_models_:
        return filt
    rng = np.random.default_rng(0)
    if check_points is None:
        check_points = rng.normal(size=(2000, 3))
        check_points[::10] *= 20.0
    compiled = []
    for k, model in enumerate(filt.point_models_):
        fast = CompiledIForest(model)
        want = np.asarray(model.decision_function(check_points))
        got = fast.decision_function(check_points)
        if not np.array_equal(want, got):
            raise PreprocessingError(
                f"compiled point model of channel {k} differs from pyod by "
                f"{float(np.abs(want - got).max()):.3g}"
            )
        compiled.append(fast)
    out = copy.copy(filt)
    out.point_models_ = compiled
    return out


def _longest_runs(mask: np.ndarray) -> np.ndarray:
    """Longest run of True per column of a ``(length, n_channels)`` boolean mask."""
    out = np.zeros(mask.shape[1], dtype=np.int64)
    for k in range(mask.shape[1]):
        col = np.r_[False, mask[:, k], False].astype(np.int8)
        edges = np.flatnonzero(np.diff(col))
        if len(edges):
            out[k] = int((edges[1::2] - edges[::2]).max())
    return out


def _alignment_from_metadata(meta: dict[str, Any]) -> AlignmentState:
    """AlignmentState from ``dtw_references.json`` (the ``alignment`` metadata of ingestion)."""
    method = meta.get("method")
    if method == "linear_resample":
        return AlignmentState("linear_resample", int(meta["reference_length"]))
    if method != "dtw":
        raise PreprocessingError(
            f"dtw_references.json 'method' must be 'dtw' or 'linear_resample'; got {method!r}"
        )
    missing = [k for k in ("reference_length", "dtw_window", "references") if k not in meta]
    if missing:
        raise PreprocessingError(f"dtw_references.json lacks key(s) {missing}")
    window = meta["dtw_window"]
    kwargs: dict[str, Any] = {"window": window}
    if window == "sakoe_chiba":
        kwargs["radius"] = int(meta["sakoe_chiba_radius"])
    elif window == "itakura":
        kwargs["itakura_max_slope"] = float(meta["itakura_max_slope"])
    names = tuple(str(k) for k in meta["references"])
    refs = np.stack([np.asarray(meta["references"][k], dtype=np.float64) for k in names])
    return AlignmentState(
        method="dtw",
        reference_length=int(meta["reference_length"]),
        reference_names=names,
        references=refs,
        dtw=DTWConfig(**kwargs),
    )
