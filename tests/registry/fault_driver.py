"""Subprocess driver of the fault-injection tests: one registry command, maybe killed at a kill point.

    python -m tests.registry.fault_driver URI NAME register VARIANT=PATH [VARIANT=PATH ...]
    python -m tests.registry.fault_driver URI NAME promote VERSION TARGET
    python -m tests.registry.fault_driver URI NAME rollback
    python -m tests.registry.fault_driver URI NAME doctor
    python -m tests.registry.fault_driver URI NAME pipeline FP32_PATH INT8_PATH

It calls the registry functions directly (the same code ``kedro run --pipelines=promotion`` and
``sensorops models`` run) with the tests' fast lease; ``SENSOROPS_FAULT_KILL_AT`` picks the kill
point (:mod:`sensorops.faultpoints`). Prints one JSON line on success.
"""

from __future__ import annotations

import json
import sys

from sensorops.registry import PromotionConfig, VariantSpec, connect, promote, register_variants
from sensorops.registry.doctor import doctor
from sensorops.registry.transitions import rollback
from tests.modeling.rows import comparison_json, comparison_row
from tests.registry.registry_helpers import FAULT_LOCK, GOOD_TAGS, make_model_input


def run_promotion(reg, name: str, fp32: str, int8: str) -> dict:
    """register_models + promote_to_staging on the given export and compression files."""
    from sensorops.modeling.metrics import file_sha256
    from sensorops.registry.register import parse_comparison
    from sensorops.registry.workflow import register_from_reports, stage_registered

    cfg = PromotionConfig(model_name=name, lock=FAULT_LOCK)
    export = {
        "onnx_path": fp32, "onnx_sha256": file_sha256(fp32), "checkpoint_sha256": "c" * 64,
        "parity_passed": True, "parity_max_abs_diff": 1e-7, "execution_provider": "CPUExecutionProvider",
    }  # fmt: skip
    comparison = parse_comparison(
        comparison_json(comparison_row("int8_dynamic", int8, True, accuracy=0.9))
    )
    mi = make_model_input()
    registered = register_from_reports(
        export, comparison, {"passed": True}, {"accuracy": 0.95}, mi, cfg,
        training_summary={"best_checkpoint_sha256": "c" * 64}, reg=reg,
    )  # fmt: skip
    return stage_registered(registered, mi, cfg, reg=reg)


def main(argv: list[str]) -> int:
    uri, name, action, *rest = argv
    reg = connect(uri)
    cfg = PromotionConfig(lock=FAULT_LOCK)
    mi = make_model_input()
    if action == "register":
        specs = [VariantSpec(*item.split("=", 1)) for item in rest]
        out = [
            rv.to_dict()
            for rv in register_variants(specs, mi, name, GOOD_TAGS, reg=reg, config=cfg)
        ]
    elif action == "promote":
        out = promote(reg, name, rest[0], rest[1], config=cfg, mi=mi).to_dict()
    elif action == "rollback":
        out = rollback(reg, name, config=cfg).to_dict()
    elif action == "doctor":
        out = doctor(reg, name, fix=True, config=cfg).to_dict()
    elif action == "pipeline":  # the promotion pipeline's two nodes, as `kedro run` calls them
        out = run_promotion(reg, name, rest[0], rest[1])
    else:
        raise SystemExit(f"unknown action {action!r}")
    sys.stdout.write(json.dumps(out, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
