#!/usr/bin/env bash
# The CIFAR-10 ResNet study of the README on a Slurm cluster (documented; not run in CI).
#
# A ResNet (105,940 parameters) trained with SGD + momentum and a step-decay schedule, a sibling
# run from the same initialisation on the same batches with a constant low learning rate, top-20
# certified Hessian eigenpairs, densities and traces at every 10th snapshot as a Slurm job array
# (4 GPUs per task, data parallel), then line searches, spectrum evolution, the trajectory in the
# eigenbasis, sharpness on both runs, gradient projections, a surface, and the report.
#
# Costs, roughly, on A100s: training 60,000 steps ≈ 1.5 h on one GPU; one Hessian job (top-20 on
# 50,000 images, density 10×100, trace 300) ≈ 15–25 min per checkpoint on 4 GPUs; 60 checkpoints
# ≈ 15–25 GPU-hours in all. Every command is resumable: rerun it after a preemption.
#
# Edit the variables, then run the sections one at a time (each waits for nothing: submit, then
# come back when `squeue` is empty). Python side: see examples/own_training_loop.py.
set -euo pipefail

DATA=${DATA:-$HOME/data}                    # holds cifar-10-batches-py/ or cifar-10-python.tar.gz
OUT=${OUT:-$PWD/c10}                         # run files, results, figures
PARTITION=${PARTITION:-gpu}
SETUP=${SETUP:-"source $PWD/.venv/bin/activate"}   # what a job runs before `landscape`
mkdir -p "$OUT"

# --- 1. train (one GPU; run it inside `srun --gpus 1 --time 4:00:00 ...` or an sbatch script) ---
landscape train --dataset cifar10 --data-dir "$DATA" --model resnet_100k --lr 0.1 --momentum 0.9 \
    --weight-decay 5e-4 --schedule step --milestones 20000,40000 --steps 60000 --batch-size 128 \
    --save-every 100 --eval-every 1000 --sharpness-every 1000 --sharpness-k 2 --device cuda --deterministic \
    --out "$OUT/c10.h5"
# the sibling: same init and batches, no decay, the low learning rate
landscape train --init-from "$OUT/c10.h5" --batches-from "$OUT/c10.h5" --schedule constant --lr 0.02 \
    --data-dir "$DATA" --device cuda --deterministic --out "$OUT/c10-low.h5"
# after a preemption or a kill: `landscape train --resume --out "$OUT/c10.h5"` continues bitwise

# --- 2. Hessian jobs: a Slurm array over checkpoints, 4 steps per task, 4 GPUs per task -----------
for run in c10 c10-low; do
    landscape jobs submit --partition "$PARTITION" --gpus-per-node 4 --nproc-per-node 4 --steps-per-task 4 \
        --time-min 180 --setup "$SETUP" \
        "$OUT/$run.h5" --steps every:10,last --k 20 --density 10 100 --trace 300 --out "$OUT/$run-res.h5"
done
# `landscape jobs submit --dry-run ...` prints the sbatch scripts first; when the array is done,
# `landscape jobs merge "$OUT/c10-res.h5"` collects the parts (submit does it for --executor local).

# --- 3. analyses (one GPU each; minutes to an hour) -----------------------------------------------
landscape linesearch "$OUT/c10.h5" --eigen "$OUT/c10-res.h5" --out "$OUT/c10-res.h5" --steps every:6,last \
    --directions top:5 --minibatch-size 1000 --device cuda
landscape evolution "$OUT/c10-res.h5"
landscape trajectory "$OUT/c10.h5" --out "$OUT/c10-res.h5" --ref-step last
for run in c10 c10-low; do
    landscape sharpness "$OUT/$run.h5" --out "$OUT/$run-res.h5" --steps last --radii 0.01,0.05 \
        --kinds gaussian,filter --subset 10000 --device cuda
done
landscape sharpness-study "$OUT/c10-res.h5" "$OUT/c10-low-res.h5" --out "$OUT/study.h5"
landscape gradproj "$OUT/c10.h5" --eigen "$OUT/c10-res.h5" --out "$OUT/c10-res.h5" --steps last --subset 10000 \
    --device cuda
landscape surface "$OUT/c10.h5" --out "$OUT/c10-res.h5" --steps last --grid 41 --subset 10000 --device cuda

# --- 4. figures and the report ---------------------------------------------------------------------
landscape plot "$OUT/c10-res.h5" "$OUT/c10.h5" --out "$OUT/figures"
landscape report "$OUT/c10.h5" "$OUT/c10-res.h5" --out "$OUT/report" --overwrite
echo "report: $OUT/report/report.html"
