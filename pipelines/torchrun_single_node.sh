#!/usr/bin/env bash
# Single-node training with torchrun: one worker per GPU (NCCL) or N CPU workers (gloo).
#
# The config is the one `kedro run --pipelines=training` writes into the run directory
# (training.trainer.output_dir, default data/06_models/training/resolved_config.json); it names
# the model input .npz that every worker reads. Resumes automatically from checkpoints/last.pt.
#
# Usage (from the project root):
#   pipelines/torchrun_single_node.sh                                   # all visible GPUs, or 2 CPU workers
#   NPROC=4 CONFIG=path/to/resolved_config.json pipelines/torchrun_single_node.sh
#   pipelines/torchrun_single_node.sh --model-input data/05_model_input/model_input.npz
#
# Equivalent command line:
#   torchrun --standalone --nproc_per_node=gpu --max_restarts=1 \
#       -m sensorops.training.train --config data/06_models/training/resolved_config.json
set -euo pipefail

CONFIG="${CONFIG:-data/06_models/training/resolved_config.json}"
if [[ -z "${NPROC:-}" ]]; then
  if python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then NPROC=gpu; else NPROC=2; fi
fi
if [[ ! -f "$CONFIG" ]]; then
  echo "config $CONFIG not found: run 'kedro run --pipelines=training' once, or set CONFIG=" >&2
  exit 2
fi

exec torchrun --standalone --nproc_per_node="$NPROC" --max_restarts="${MAX_RESTARTS:-1}" \
  -m sensorops.training.train --config "$CONFIG" "$@"
