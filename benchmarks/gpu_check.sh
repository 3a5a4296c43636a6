#!/usr/bin/env bash
# The one prepared GPU check for issues 8 and 30 (speed): benchmarks/bench_gpu.py on the lent
# CUDA machine, reference included; writes the table to $OUT/gpu_table.md, the full log to
# $OUT/gpu_log.txt, raw results to $OUT/gpu_results.json, a torch.profiler table of the fastest
# set-up to $OUT/gpu_profile.txt and the machine's state to $OUT/gpu_env.txt. The table is also
# the last thing printed (the run tool's output_tail).
#
# 1. On the session's own machine, in the repository root, once (no device time):
#
#      bash benchmarks/gpu_check.sh prepare ROSINALITY_GIT_DIR JOJOGAN_GIT_DIR
#
#    (the mirrors' bare git directories or any checkouts of rosinality/stylegan2-pytorch and
#    mchong6/JoJoGAN). It exports only their model.py and op/ into scratch/bench_ref/, which
#    .gitignore ignores (/scratch/): never committed, only carried to the device machine.
#
# 2. The device call (the `run` tool), about 9 minutes of its 15:
#
#      command:   bash benchmarks/gpu_check.sh
#      carry:     ["scratch/bench_ref"]
#      timeout_s: 570
#
#    The working tree travels as it is; while other work is uncommitted in it, run a snapshot of
#    HEAD instead: `bash benchmarks/gpu_check.sh snapshot` (after prepare) writes one to
#    scratch/head/, then command `cd scratch/head && bash benchmarks/gpu_check.sh`, carry
#    ["scratch/head"].
#
#    BUDGET_S (default 480) bounds the benchmark's rows: none starts after it, a running one is
#    stopped at it, and the rest print "skipped", so the command ends after about 8.5 minutes.
#    Extra arguments go to bench_gpu.py (later ones win). A shorter rerun, if device time is
#    left:  BUDGET_S=150 bash benchmarks/gpu_check.sh --no-compile --precisions tf32 bf16
#    The device machine has torch, nvcc and ninja (KINDS.md) and no internet; nothing is
#    installed. JoJoGAN's CUDA ops build in the background (--reference-native) while our rows
#    run, and the pure-PyTorch ops stand in if they fail; torch.compile rows come last.
#
# 3. Afterwards: rm -rf scratch/bench_ref scratch/head
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REF=scratch/bench_ref

if [ "${1:-}" = prepare ]; then
    if [ $# -ne 3 ]; then
        echo "usage: bash benchmarks/gpu_check.sh prepare ROSINALITY_GIT_DIR JOJOGAN_GIT_DIR" >&2
        exit 2
    fi
    rm -rf "$REF"
    export_files() {  # git dir, destination: model.py and op/ at HEAD, no __pycache__
        local src=$1 dst=$2 f
        git -C "$src" ls-tree -r --name-only HEAD -- model.py op | grep -v __pycache__ |
            while read -r f; do
                mkdir -p "$dst/$(dirname "$f")"
                git -C "$src" show "HEAD:$f" >"$dst/$f" || exit 1
            done
        [ -f "$dst/model.py" ] && [ -d "$dst/op" ] || { echo "no model.py/op in $src" >&2; exit 1; }
    }
    export_files "$2" "$REF/rosinality" || exit 1
    export_files "$3" "$REF/jojogan" || exit 1
    git check-ignore -q "$REF" || echo "WARNING: $REF is not ignored by git; do not commit it" >&2
    du -sh "$REF"
    echo "ready: run 'bash benchmarks/gpu_check.sh' with carry [\"$REF\"], then rm -rf $REF"
    exit 0
fi

if [ "${1:-}" = snapshot ]; then  # HEAD's code + the prepared reference, in scratch/head/
    [ -d "$REF/rosinality" ] || { echo "run the prepare step first" >&2; exit 2; }
    rm -rf scratch/head && mkdir -p scratch/head/scratch || exit 1
    git archive HEAD jojogan benchmarks tests/fixtures/stylegan2/make_fixtures.py \
        tests/fixtures/stylegan2/seeded.py |
        tar -x -C scratch/head || exit 1
    cp -r "$REF" scratch/head/scratch/ && du -sh scratch/head
    echo "ready: run 'cd scratch/head && bash benchmarks/gpu_check.sh' with carry [\"scratch/head\"]"
    exit 0
fi

OUT="${OUT:-$PWD/scratch/gpu_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the device has no install: jojogan from here
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"  # H100/H200: build sm_90 only
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm,temperature.gpu,power.draw,power.limit --format=csv
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
    command -v nvcc ninja
    nproc
} 2>&1 | tee "$OUT/gpu_env.txt"

args=(--device cuda --compile --budget-s "${BUDGET_S:-480}" --profile "$OUT/gpu_profile.txt"
      --table "$OUT/gpu_table.md" --json "$OUT/gpu_results.json")
if [ -f "$REF/rosinality/model.py" ] && [ -d "$REF/jojogan/op" ]; then
    args+=(--reference "$REF/rosinality" --jojogan "$REF/jojogan" --reference-native)
else
    echo "NOTE: no reference at $REF (run the prepare step and carry it): no reference rows"
fi
"$PY" benchmarks/bench_gpu.py "${args[@]}" "$@" 2>&1 | tee "$OUT/gpu_log.txt"
exit "${PIPESTATUS[0]}"
