"""How clean the warp method's sprites are, on composites with a known true mask.

The drawn figure over real scikit-image photos (and cut above the knees: a portrait), each
animated along a few motions with a transparent background (tests/warp_cases.py). Per case and
motion it prints the worst frame's: share of the figure outside its largest piece, holes through
its core, enclosed gaps (also those between a limb and the body), pixels that show apart from
the figure (specks), figure pixels on the frame border (where the photo did not cut the body), whether a cut body stays cut at the frame's edge,
pose fidelity (PCK@0.35 of the torso: worst frame and clip mean), torso colour drift (/255, of
the inner torso's median colour: a forearm swinging in front of the chest is no drift), and
the source mask's errors against the truth (background kept as figure, figure missed).

With --speed it times the method instead: building it (mask, rig, background plate) and the
warp itself per frame, on the astronaut (512x512) and the figure (384x512). With --matching the
figure is dressed in each backdrop's commonest colour (a white shirt on a white wall: the cut
must not lose the clothes; a photo where BlazePose then finds nobody uses GrabCut's mask).

    python benchmarks/bench_warp_quality.py [--motions wave,jump,walk,walk:side,run:side] [--speed] [--matching]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def speed(repeat: int = 3):
    import numpy as np
    from skimage import data

    from posekit.methods.warp.method import WarpMethod, WarpOptions
    from posekit.pose.detect import detect_person
    from warp_cases import Case, clip, make_case

    astronaut = data.astronaut()
    figure = make_case("coffee")
    cases = [Case("astronaut 512x512", astronaut, np.zeros(1), detect_person(astronaut)), figure]
    print(f"{'case':<22}{'motion':<7}{'background':<13}{'build s':>9}{'warp s/frame':>14}")
    for case in cases:
        for motion in ("wave", "walk"):
            targets = clip(case, motion, frames=8)
            for background in ("keep", "transparent"):
                t = time.perf_counter()
                method = WarpMethod(case.image, case.pose, WarpOptions(background=background))
                build = time.perf_counter() - t
                per_frame = []
                for _ in range(repeat):
                    t = time.perf_counter()
                    method(targets)
                    per_frame.append((time.perf_counter() - t) / len(targets))
                print(f"{case.name:<22}{motion:<7}{background:<13}{build:9.2f}{min(per_frame):14.3f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--motions", default="wave,jump,walk")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--matching", action="store_true", help="dress the figure in the backdrop's commonest colour")
    args = ap.parse_args()
    from posekit.console import quiet_libraries

    quiet_libraries()
    if args.speed:
        return speed()
    from posekit.pose.detect import load_detector
    from warp_cases import PHOTOS, make_case, measure

    cols = ("pieces", "holes", "gaps", "stray_px", "border_px", "cut_kept", "pck", "pck_mean", "drift", "background_kept", "missed")
    width = 35 if args.matching else 26
    print(f"{'case':<{width}}{'motion':<10}" + "".join(f"{c[:10]:>11}" for c in cols) + f"{'s':>6}")
    with load_detector("blazepose") as detector:
        for photo in PHOTOS:
            for portrait in (False, True):
                case = make_case(photo, portrait, matching=args.matching)
                for m in args.motions.split(","):
                    t = time.perf_counter()
                    r = measure(case, m, detector=detector)
                    cells = "".join(f"{'-':>11}" if r[c] is None else f"{float(r[c]):11.4f}" for c in cols)
                    print(f"{case.name:<{width}}{m:<10}{cells}{time.perf_counter() - t:6.1f}", flush=True)


if __name__ == "__main__":
    main()
