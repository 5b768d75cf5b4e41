"""kedro-datasets file datasets whose ``save`` is atomic on the local filesystem.

Each class is the kedro-datasets class of the same name, except that the data are written to a
temporary sibling file first and renamed onto the target only once fully written. A failed save
leaves the previous file (or none) in place, never half a file. Remote protocols (s3, gcs...) write
whole objects anyway and go through the parent unchanged.

Use them in the catalog exactly like the originals::

    rpt_summary:
      type: sensorops.datasets.JSONDataset
      filepath: data/08_reporting/summary.json
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import get_filepath_str
from kedro_datasets.json import JSONDataset as _JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset as _MatplotlibDataset
from kedro_datasets.pandas import CSVDataset as _CSVDataset
from kedro_datasets.pandas import ParquetDataset as _ParquetDataset
from kedro_datasets.pickle import PickleDataset as _PickleDataset
from kedro_datasets.text import TextDataset as _TextDataset


class AtomicSaveMixin:
    """Redirect the parent's save to a temporary sibling, then ``os.replace`` it onto the target."""

    _atomic_target: PurePosixPath | None = None

    def _get_save_path(self) -> PurePosixPath:
        if self._atomic_target is not None:
            return self._atomic_target
        return super()._get_save_path()  # type: ignore[misc]

    def save(self, data: Any) -> None:
        if getattr(self, "_protocol", "file") != "file" or (
            isinstance(data, (dict, list)) and self._multi_file(data)
        ):
            super().save(data)  # type: ignore[misc]
            return
        final = Path(get_filepath_str(super()._get_save_path(), "file"))  # type: ignore[misc]
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp{final.suffix}")
        self._atomic_target = PurePosixPath(tmp.as_posix())
        try:
            super().save(data)  # type: ignore[misc]
            os.replace(tmp, final)
        finally:
            self._atomic_target = None
            if tmp.exists():
                tmp.unlink()

    def _multi_file(self, data: Any) -> bool:
        """Datasets that write a folder of files for a dict/list (matplotlib) are not renamed."""
        return False


class JSONDataset(AtomicSaveMixin, _JSONDataset):
    """``json.JSONDataset`` with an atomic local save."""


class CSVDataset(AtomicSaveMixin, _CSVDataset):
    """``pandas.CSVDataset`` with an atomic local save."""


class ParquetDataset(AtomicSaveMixin, _ParquetDataset):
    """``pandas.ParquetDataset`` with an atomic local save."""


class TextDataset(AtomicSaveMixin, _TextDataset):
    """``text.TextDataset`` with an atomic local save."""


class PickleDataset(AtomicSaveMixin, _PickleDataset):
    """``pickle.PickleDataset`` with an atomic local save (local, trusted artifacts only)."""


class MatplotlibDataset(AtomicSaveMixin, _MatplotlibDataset):
    """``matplotlib.MatplotlibDataset`` with an atomic local save for a single figure."""

    def _multi_file(self, data: Any) -> bool:
        return isinstance(data, (dict, list))
