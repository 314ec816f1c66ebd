#!/usr/bin/env bash
# The GPU figures of issues 10 (SD 1.5, ControlNet, AnimateDiff, IP-Adapter) and 13 (Wan2.2-Animate)
# in two prepared calls of a lent GPU machine (the device tool: 15 minutes in all, 10 per call).
#
#   bash benchmarks/gpu_session.sh fetch        # here, once: the wheels the GPU image lacks -> .whl/
#   run(command="bash benchmarks/gpu_session.sh diffusion", carry=[".whl"], timeout_s=480)
#   run(command="bash benchmarks/gpu_session.sh wan", carry=[".whl"], timeout_s=360)
#   bash benchmarks/gpu_session.sh diffusion --tiny   # here: the same steps on tiny models (CPU)
#
# The GPU image has torch, transformers, accelerate, peft, typer, rich, opencv and scikit-image
# (device/KINDS.md) but not diffusers, mediapipe or controlnet-aux: `fetch` downloads those at the
# versions constraints.txt pins, as wheels for the image's Python 3.12 (about 50 MB; the working
# tree travels with them, 64 MiB in all). Each part runs its steps most-wanted first, each under
# the time left before DEADLINE seconds (420 for diffusion, 300 for wan: with a machine's start
# of a minute or two that is 13-14 of the 15 minutes), and writes its log to $OUT/<part>.log (on
# the device $OUT comes back; elsewhere out/gpu/), so a part cut short still returns the rows it
# measured. Copy the tables into benchmarks/RESULTS.md with the card's name.
set -uo pipefail
cd "$(dirname "$0")/.."
part=${1:-}
shift || true
extra=("$@")  # e.g. --tiny

pinned() { grep -i "^$1==" constraints.txt | head -1 | cut -d= -f3; }

if [ "$part" = fetch ]; then
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    rm -rf .whl && mkdir -p .whl
    for name in diffusers mediapipe controlnet-aux; do
        version=$(pinned "$name")
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d .whl "$name${version:+==$version}" || exit 1
    done
    du -ch .whl/*.whl | tail -1
    exit 0
fi
if [ "$part" != diffusion ] && [ "$part" != wan ]; then
    echo "usage: bash benchmarks/gpu_session.sh fetch | diffusion [--tiny] | wan [--tiny]" >&2
    exit 2
fi

OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
log="$OUT/$part.log"
: > "$log"
exec > >(tee -a "$log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
start=$SECONDS
if [ "$part" = diffusion ]; then deadline=${DEADLINE:-420}; else deadline=${DEADLINE:-300}; fi
left() { echo $((deadline - (SECONDS - start))); }

step() {  # step LABEL COMMAND...: run it under the time left, or say it was left out
    local label=$1
    shift
    local t
    t=$(left)
    if [ "$t" -lt 30 ]; then
        echo "== $label: left out, $((t > 0 ? t : 0)) s before the deadline"
        return
    fi
    echo "== $label (at $((SECONDS - start)) s, ${t} s left)"
    timeout --signal=INT --kill-after=10 "$t" "$@"
    echo "== $label: exit $? at $((SECONDS - start)) s"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
"$PY" -c "import importlib.metadata as m, sys
names = ('torch', 'diffusers', 'transformers', 'accelerate', 'peft', 'mediapipe')
def v(p):
    try: return m.version(p)
    except m.PackageNotFoundError: return 'missing'
print('python', sys.version.split()[0], *(f'{p} {v(p)}' for p in names))"

models=/tmp/sd15-random
case " ${extra[*]} " in *" --tiny "*) models=/tmp/sd15-tiny ;; esac
bench=(benchmarks/bench_diffusion_gpu.py "${extra[@]}")
if [ "$part" = diffusion ]; then
    # the per-frame and AnimateDiff rows (eager; with and without offload and the IP-Adapter),
    # then the 45 it/s target with torch.compile, then the sheet, then the other compiled rows
    step "per frame and AnimateDiff, eager" "$PY" "${bench[@]}" --only img2img,animatediff --no-compile \
        --keep-models "$models" --row-timeout 150
    step "per frame, torch.compile" "$PY" "${bench[@]}" --models "$models" --only "img2img compile" --row-timeout 240
    step "sheet, eager" "$PY" "${bench[@]}" --models "$models" --only sheet --no-compile --row-timeout 120
    step "AnimateDiff and sheet, torch.compile" "$PY" "${bench[@]}" --models "$models" \
        --only "animatediff compile,sheet compile" --row-timeout 240
else
    # the target first: the whole 16-frame sprite at 480p through posekit (every model on the GPU);
    # then the transformer alone on one 77-frame segment at 480p and 720p, with and without group
    # offload; then the whole sprite under group and model offload (peak memory of the whole pipeline)
    step "whole sprite, offload none" "$PY" benchmarks/bench_wan.py --sprite none "${extra[@]}"
    step "Wan2.2-Animate transformer" "$PY" benchmarks/bench_wan.py --repeats 2 "${extra[@]}"
    step "whole sprite, offload group" "$PY" benchmarks/bench_wan.py --sprite group "${extra[@]}"
    step "whole sprite, offload model" "$PY" benchmarks/bench_wan.py --sprite model "${extra[@]}"
fi
echo "== done in $((SECONDS - start)) s"
