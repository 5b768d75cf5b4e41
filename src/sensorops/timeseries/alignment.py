"""Reference templates and DTW alignment of every series to a fixed length.

:class:`SeriesAligner` computes reference templates from the **training split only** (one per
class, or one global; the DTW medoid, or a DBA barycenter started from it, computed with our
kernel or with tslearn) and aligns any series onto
them with the numba kernel of :mod:`sensorops.timeseries.dtw`. Alignment never uses labels:
with per-class references every series (train, val, test alike) is aligned to the reference
with the smallest DTW cost, and that choice is recorded per series.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from sensorops.timeseries.band import Band
from sensorops.timeseries.config import AlignmentConfig
from sensorops.timeseries.dtw import align_to_reference
from sensorops.timeseries.errors import check_channels, check_is_fitted
from sensorops.timeseries.series import SeriesSet, to_padded

logger = logging.getLogger(__name__)

GLOBAL_REFERENCE = "__global__"


def resample(x: np.ndarray, length: int) -> np.ndarray:
    """Linear resampling of ``x`` ``(L, C)`` to ``(length, C)`` over the same time span."""
    if len(x) == length:
        return np.asarray(x, dtype=np.float64)
    src = np.linspace(0.0, 1.0, len(x))
    dst = np.linspace(0.0, 1.0, length)
    return np.column_stack([np.interp(dst, src, x[:, k]) for k in range(x.shape[1])])


def resample_all(values: list[np.ndarray], length: int) -> np.ndarray:
    """Every series resampled to ``length``: ``(n_series, length, n_channels)`` float32."""
    if not values:
        return np.empty((0, length, 0), dtype=np.float32)
    return np.stack([resample(v, length) for v in values]).astype(np.float32)


@dataclass
class AlignmentResult:
    """Output of :meth:`SeriesAligner.transform`.

    Attributes:
        X: ``(n_series, ref_length, n_channels)`` float32 aligned series.
        costs: ``(n_series,)`` DTW distance to the chosen reference.
        reference: ``(n_series,)`` name of the chosen reference (class label or ``__global__``).
        all_costs: ``(n_series, n_references)`` distance to every reference.
    """

    X: np.ndarray
    costs: np.ndarray
    reference: np.ndarray
    all_costs: np.ndarray


class SeriesAligner:
    """DTW alignment onto reference templates fitted on training series.

    Args:
        config: an :class:`~sensorops.timeseries.config.AlignmentConfig`.

    Fitted attributes: ``ref_length_`` (int), ``band_`` (the DTW :class:`Band` in steps, fixed
    for ``ref_length_``), ``n_channels_`` (int), ``reference_names_`` (list[str]),
    ``references_`` (``(n_references, ref_length, n_channels)`` float64).
    """

    def __init__(self, config: AlignmentConfig | None = None) -> None:
        self.config = config

    @property
    def _cfg(self) -> AlignmentConfig:
        return self.config if self.config is not None else AlignmentConfig()

    def _medoid(self, members: list[np.ndarray]) -> np.ndarray:
        """The member with the smallest summed DTW distance to the others, resampled to ref length."""
        if len(members) == 1:
            return resample(members[0], self.ref_length_)
        data, lengths = to_padded(members)
        totals = np.empty(len(members))
        for c, cand in enumerate(members):
            _, costs = align_to_reference(
                data, lengths, resample(cand, self.ref_length_), self.band_
            )
            totals[c] = costs.sum()
        return resample(members[int(np.argmin(totals))], self.ref_length_)

    def _dba(self, members: list[np.ndarray], init: np.ndarray) -> np.ndarray:
        """DTW Barycenter Averaging (Petitjean et al. 2011) on our kernel.

        Each iteration aligns every member onto the barycenter and replaces reference step ``j``
        by the mean of all member points matched to it (tslearn's update rule); it stops after
        ``dba_max_iter`` iterations or when the summed squared DTW cost stops decreasing.
        """
        cfg = self._cfg
        data, lengths = to_padded(members)
        bary = np.asarray(init, dtype=np.float64)
        previous = np.inf
        for _ in range(cfg.reference.dba_max_iter):
            X, costs, counts = align_to_reference(
                data, lengths, bary, self.band_, out_dtype=np.float64, return_counts=True
            )
            cost = float((costs**2).sum())
            if previous - cost < 1e-5:
                break
            previous = cost
            bary = (X * counts[:, :, None]).sum(axis=0) / counts.sum(axis=0)[:, None]
        return bary

    def _dba_tslearn(self, members: list[np.ndarray], init: np.ndarray) -> np.ndarray:
        """tslearn's ``dtw_barycenter_averaging`` (slower: several seconds of JIT per process)."""
        from tslearn.barycenters import dtw_barycenter_averaging
        from tslearn.utils import to_time_series_dataset

        cfg = self._cfg
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bary = dtw_barycenter_averaging(
                to_time_series_dataset(members),
                barycenter_size=self.ref_length_,
                init_barycenter=init,
                max_iter=cfg.reference.dba_max_iter,
                metric_params=self.band_.tslearn_kwargs(),
            )
        return np.asarray(bary, dtype=np.float64)

    def fit(self, train: SeriesSet) -> SeriesAligner:
        """Compute reference templates from training series (NaN-free, ``(L_i, C)`` each)."""
        cfg = self._cfg.reference
        if len(train) == 0:
            raise ValueError(
                "alignment needs at least one training series; the train split is empty"
            )
        self.ref_length_ = int(cfg.length) if cfg.length else int(np.median(train.lengths))
        self.band_: Band = self._cfg.dtw.band(self.ref_length_)
        self.n_channels_ = int(train.values[0].shape[1])
        rng = np.random.default_rng(cfg.seed)
        if cfg.scope == "per_class":
            names = sorted(set(train.labels.tolist()))
            groups = [np.flatnonzero(train.labels == name) for name in names]
        else:
            names = [GLOBAL_REFERENCE]
            groups = [np.arange(len(train))]
        refs = []
        for name, idx in zip(names, groups, strict=True):
            if len(idx) > cfg.max_series:
                idx = np.sort(rng.choice(idx, size=cfg.max_series, replace=False))
            members = [train.values[i] for i in idx]
            ref = self._medoid(members)
            if cfg.method == "dba":
                ref = self._dba(members, ref)
            elif cfg.method == "dba_tslearn":
                ref = self._dba_tslearn(members, ref)
            refs.append(ref)
            logger.info(
                "reference %r: %s of %d train series, length %d",
                name,
                cfg.method,
                len(members),
                self.ref_length_,
            )
        self.reference_names_ = names
        self.references_ = np.stack(refs)
        return self

    @classmethod
    def from_references(
        cls, cfg: AlignmentConfig, references: np.ndarray, reference_names: list[str]
    ) -> SeriesAligner:
        """A fitted aligner over stored ``references`` ``(n_references, ref_length, n_channels)``
        (e.g. a registered model's preprocessing state): the same fitted attributes as :meth:`fit`."""
        refs = np.asarray(references, dtype=np.float64)
        if refs.ndim != 3 or len(refs) != len(reference_names):
            raise ValueError(
                "references must be (n_references, ref_length, n_channels) with one name each; "
                f"got shape {refs.shape} and {len(reference_names)} name(s)"
            )
        aligner = cls(cfg)
        aligner.ref_length_ = int(refs.shape[1])
        aligner.band_ = cfg.dtw.band(aligner.ref_length_)
        aligner.n_channels_ = int(refs.shape[2])
        aligner.reference_names_ = list(reference_names)
        aligner.references_ = refs
        return aligner

    def transform(self, series: SeriesSet) -> AlignmentResult:
        """Align every series (labels unused) onto its least-cost reference.

        Raises:
            NotFittedError: before :meth:`fit`.
            ChannelCountError: the series have another number of channels than the train series.
        """
        check_is_fitted(self, "references_")
        n_ch = self.n_channels_
        if len(series):
            check_channels(self, n_ch, int(series.values[0].shape[1]))
        if len(series) == 0:
            empty = np.empty((0, self.ref_length_, n_ch), dtype=np.float32)
            return AlignmentResult(
                empty,
                np.empty(0),
                np.empty(0, dtype=str),
                np.empty((0, len(self.reference_names_))),
            )
        if series.padded is not None:
            data, lengths = series.padded, series.lengths
        else:
            data, lengths = to_padded(series.values)
        outs, all_costs = [], []
        for ref in self.references_:
            X, costs = align_to_reference(data, lengths, ref, self.band_)
            outs.append(X)
            all_costs.append(costs)
        cost_mat = np.column_stack(all_costs)
        choice = np.argmin(cost_mat, axis=1)
        if len(outs) == 1:
            X = outs[0]
        else:
            X = np.stack(outs)[choice, np.arange(len(series))]
        return AlignmentResult(
            X=X,
            costs=cost_mat[np.arange(len(series)), choice],
            reference=np.asarray(self.reference_names_)[choice],
            all_costs=cost_mat,
        )
