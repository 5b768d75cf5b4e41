#!/usr/bin/env bash
# Two-node (or N-node) training with torchrun and the c10d rendezvous. Run this on EVERY node,
# with the same HEAD_HOST/JOB_ID and a different NODE_RANK. All nodes must see the same
# config, model input and output_dir (a shared filesystem): global rank 0 writes checkpoints there
# and every rank resumes from them.
#
# Usage:
#   # on the head node (10.0.0.1):
#   NNODES=2 NODE_RANK=0 HEAD_HOST=10.0.0.1 NODE_ADDR=10.0.0.1 IFNAME=eth1 JOB_ID=run42 pipelines/torchrun_multi_node.sh
#   # on the second node:
#   NNODES=2 NODE_RANK=1 HEAD_HOST=10.0.0.1 NODE_ADDR=10.0.0.2 IFNAME=eth1 JOB_ID=run42 pipelines/torchrun_multi_node.sh
#
# The interface is explicit: NODE_ADDR (this node's address on the training network, given to
# torchrun as --local_addr) and IFNAME (that network's interface, for gloo and NCCL). PyTorch's
# rendezvous store (unauthenticated) listens on every interface of the head node: keep the
# training network private, or firewall RDZV_PORT to the training nodes.
#
# Equivalent command line (per node):
#   torchrun --nnodes=2 --node_rank=$NODE_RANK --nproc_per_node=gpu \
#       --rdzv_backend=c10d --rdzv_endpoint=$HEAD_HOST:29400 --rdzv_id=$JOB_ID --max_restarts=1 \
#       -m sensorops.training.train --config /shared/sensorops/data/06_models/training/resolved_config.json
#
set -euo pipefail

: "${NNODES:=2}"
: "${NODE_RANK:?set NODE_RANK (0 on the head node, 1.. on the others)}"
: "${HEAD_HOST:?set HEAD_HOST to the head node address}"
: "${NODE_ADDR:?set NODE_ADDR to this node's address on the training network}"
: "${IFNAME:?set IFNAME to the training network's interface (e.g. eth1)}"
export GLOO_SOCKET_IFNAME="$IFNAME" NCCL_SOCKET_IFNAME="$IFNAME"
: "${JOB_ID:=sensorops-training}"
: "${RDZV_PORT:=29400}"
: "${NPROC:=gpu}"
CONFIG="${CONFIG:-data/06_models/training/resolved_config.json}"

exec torchrun --nnodes="$NNODES" --node_rank="$NODE_RANK" --nproc_per_node="$NPROC" \
  --rdzv_backend=c10d --rdzv_endpoint="$HEAD_HOST:$RDZV_PORT" --rdzv_id="$JOB_ID" \
  --local_addr="$NODE_ADDR" \
  --max_restarts="${MAX_RESTARTS:-1}" \
  -m sensorops.training.train --config "$CONFIG" "$@"
