"""Typed contracts of every artifact that crosses pipelines.

One frozen object per artifact, each with one :meth:`~sensorops.contracts.base.Artifact.load` /
:meth:`~sensorops.contracts.base.Artifact.save` pair (and ``from_dict``/``to_dict`` for the dicts
the Kedro catalog's JSON datasets hand over). Consumers read the fields, never the raw dict.

=========================  ===========================  =========================================
artifact (catalog name)    contract                     producer -> consumers
=========================  ===========================  =========================================
``rpt_dq_summary``         :class:`DataQualitySummary`  data_quality -> training, promotion, hooks
``mdl_training_summary``   :class:`TrainingSummary`     training -> evaluation, export, compression
``rpt_evaluation``         :class:`EvaluationReport`    training -> promotion
``mdl_export_summary``     :class:`ExportSummary`       export -> compression, promotion
``mi_model_input``         :class:`~sensorops.model_input.ModelInput` (its own ``.npz`` format)
=========================  ===========================  =========================================
"""

from sensorops.contracts.base import Artifact, ArtifactError
from sensorops.contracts.data_quality import (
    DataQualitySummary,
    DataQualityVerdict,
    StageSummary,
    TierSummary,
)
from sensorops.contracts.export import ExportSummary
from sensorops.contracts.training import EvaluationReport, TrainingSummary

__all__ = [
    "Artifact",
    "ArtifactError",
    "DataQualitySummary",
    "DataQualityVerdict",
    "EvaluationReport",
    "ExportSummary",
    "StageSummary",
    "TierSummary",
    "TrainingSummary",
]
