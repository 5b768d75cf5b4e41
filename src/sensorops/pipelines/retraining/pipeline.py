"""Wiring of the ``retraining`` pipeline.

build_retraining_set (original source + labelled, quality-passing log records -> raw_sensor_long)
-> the ingestion chain from check_raw_contract -> data_quality -> training -> export ->
compression -> promotion -> tag_candidates (lineage tags to the log window, references).
"""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Node, Pipeline

from sensorops.pipelines.compression import pipeline as compression
from sensorops.pipelines.data_quality import pipeline as data_quality
from sensorops.pipelines.export import pipeline as export
from sensorops.pipelines.ingestion import pipeline as ingestion
from sensorops.pipelines.promotion import pipeline as promotion
from sensorops.pipelines.retraining.nodes import build_retraining_set, tag_candidates
from sensorops.pipelines.training import pipeline as training

TAG = "retraining"


def create_pipeline(**kwargs: Any) -> Pipeline:
    """The whole training chain on the retraining set, ending in lineage-tagged candidates."""
    chain = ingestion.create_pipeline().from_nodes("check_raw_contract")
    for part in (data_quality, training, export, compression, promotion):
        chain = chain + part.create_pipeline()
    head = Pipeline(
        [
            Node(
                build_retraining_set,
                inputs=[
                    "params:ingestion.source",
                    "params:ingestion.split",
                    "params:monitoring",
                    "params:retraining",
                ],
                outputs=["raw_sensor_long", "mon_retraining_lineage"],
                name="build_retraining_set",
                tags=[TAG],
            ),
        ]
    )
    tail = Pipeline(
        [
            Node(
                tag_candidates,
                inputs=[
                    "mdl_registered_versions",
                    "mon_retraining_lineage",
                    "int_sensor_long",
                    "mi_model_input",
                    "params:monitoring",
                ],
                outputs="rpt_retraining",
                name="tag_candidates",
                tags=[TAG],
            ),
        ]
    )
    return head + chain + tail
