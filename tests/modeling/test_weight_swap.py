"""Export once, swap weights: the written graph is exactly what a fresh export of that model gives."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch

from sensorops.architectures import load_checkpoint_model
from sensorops.modeling import ExportError
from sensorops.modeling.pruning import MagnitudePruner
from sensorops.modeling.qat import WeightFakeQuantizer
from sensorops.modeling.weight_swap import WeightSwapTemplate

# torch 2.13's exporter gives a static time axis to every LSTM export after the first in a
# process, so each reference export runs in its own fresh process
_EXPORT = """
import sys, torch
from sensorops.architectures import load_checkpoint_model
from sensorops.modeling.onnx_export import export_onnx
model, _, _ = load_checkpoint_model(sys.argv[1])
state = torch.load(sys.argv[2]) if len(sys.argv) > 3 else None
if state is not None:
    model.load_state_dict(state)
export_onnx(model, torch.randn(2, 32, 3), sys.argv[-1])
"""


def _export_in_fresh_processes(jobs: list[list[str]]) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", _EXPORT, *args], stderr=subprocess.PIPE)
        for args in jobs
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()[-2000:]


def test_swapped_graph_equals_a_fresh_export(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    ckpt = checkpoints["lstm_attention"]
    model, _, _ = load_checkpoint_model(str(ckpt))
    # two same-shape variants: 4-bit grid weights (QAT) and 50% magnitude-pruned weights
    qat = copy.deepcopy(model)
    fq = WeightFakeQuantizer().fit(qat)
    fq.finalize()
    pruned = copy.deepcopy(model)
    MagnitudePruner(0.5).fit(pruned)
    torch.save(qat.state_dict(), tmp_path / "qat.pt")
    torch.save(pruned.state_dict(), tmp_path / "pruned.pt")
    _export_in_fresh_processes(
        [
            [str(ckpt), str(tmp_path / "template.onnx")],
            [str(ckpt), str(tmp_path / "qat.pt"), "-", str(tmp_path / "qat_fresh.onnx")],
            [str(ckpt), str(tmp_path / "pruned.pt"), "-", str(tmp_path / "pruned_fresh.onnx")],
        ]
    )
    template = WeightSwapTemplate(tmp_path / "template.onnx", model)
    assert template.mapped_ and "lstm.weight_ih_l0" not in template.constants_
    for name, variant in (("qat", qat), ("pruned", pruned)):
        swapped = template.write(variant, tmp_path / f"{name}_swapped.onnx")
        fresh = onnx.load(str(tmp_path / f"{name}_fresh.onnx"))
        assert onnx.load(str(swapped)).SerializeToString() == fresh.SerializeToString(), name


def test_swap_refuses_what_it_cannot_map(checkpoints: dict[str, Path], exports: dict) -> None:
    model, _, _ = load_checkpoint_model(str(checkpoints["lstm_attention"]))
    template = WeightSwapTemplate(exports["lstm_attention"]["onnx_path"], model)
    other, _, _ = load_checkpoint_model(str(checkpoints["resnet1d"]))
    with pytest.raises(ExportError, match="does not have the parameter names/shapes"):
        template.write(other, "never.onnx")
    # resnet1d's BatchNorm is folded into its convs: their values are no parameter values
    with pytest.raises(ExportError, match="computed from the parameters"):
        WeightSwapTemplate(exports["resnet1d"]["onnx_path"], other)
