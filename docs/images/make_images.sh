#!/usr/bin/env bash
# Regenerates the pictures in docs/images/ from the commands the README and guides show
# (offline, warp method, a minute on a laptop CPU). Run from anywhere: bash docs/images/make_images.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() { posekit animate "$@" --no-evaluate >/dev/null 2>"$work/log" || { cat "$work/log" >&2; exit 1; }; }

run examples/figure.png --poses walk --frames 8 --size 96x128 --out "$work/walk"
run examples/figure.png --poses jump --frames 8 --size 96x128 --background transparent --out "$work/jump"
run examples/astronaut.png --poses wave --frames 8 --size 128x128 --out "$work/wave"
run examples/figure.png --poses idle,walk,run,jump --frames 6 --mirror \
    --background transparent --size 96x192 --export godot,atlas --out "$work/hero"
run examples/figure.png --poses idle,walk,run,jump --frames 6 --mirror \
    --background transparent --pixel-art 16 --outline --export godot --out "$work/hero_pixel"

cp "$work/walk/animation.gif" docs/images/figure_walk.gif
cp "$work/walk/sheet.png" docs/images/figure_walk_sheet.png
cp "$work/jump/animation.gif" docs/images/figure_jump.gif
cp "$work/wave/animation.gif" docs/images/astronaut_wave.gif
cp "$work/wave/sheet.png" docs/images/astronaut_wave_sheet.png
cp "$work/hero/sheet.png" docs/images/character_sheet.png
cp "$work/hero/animations/run_right.gif" docs/images/character_run_right.gif
cp "$work/hero_pixel/animations/walk_left.gif" docs/images/character_pixel_walk_left.gif
python - "$work/hero_pixel/sheet.png" docs/images/character_pixel_sheet.png <<'PY'
import sys
from PIL import Image  # the pixel-art sheet shown 2x, pixels kept square
im = Image.open(sys.argv[1])
im.resize((im.width * 2, im.height * 2), Image.NEAREST).save(sys.argv[2])
PY
echo "docs/images/ regenerated"
