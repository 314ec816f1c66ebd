"""Cut the person out of the photo: BlazePose's learned person mask, else GrabCut from the skeleton.

`person_mask` asks the embedded BlazePose model for the people in the photo and their
segmentation masks, takes the mask of the person whose keypoints match the given skeleton (the
skeleton picks the person when there are several), keeps the pieces that touch the skeleton, takes
away the pockets of background and the pieces of other people it holds (GrabCut's colours), and
sharpens the model's soft, low-resolution edge along the photo's own edges (a guided filter), so
the edge is anti-aliased without a halo of the old background.

Without a learned mask (nobody found, or another person than the skeleton's), GrabCut: the
skeleton says where the body surely is (thin lines along the bones: definite foreground), where it
probably is (the part shapes at their usual thickness: probable foreground) and where it
surely is not (far outside the pose's box: definite background). GrabCut's colour models settle
the rest. It runs on a copy scaled to about 320 px, once per clip (a fraction of a second on a
CPU), and the mask is scaled back up and softened by a pixel for clean edges.
"""

from __future__ import annotations

import numpy as np

from posekit.methods.warp.rig import PART_INDEX, Shapes
from posekit.pose.pose import Pose

WORK_SIZE = 320  # long side GrabCut runs at
MATCH = 0.5  # a detected person is the skeleton's when their keypoints lie this close (torso sizes)


def person_mask(image: np.ndarray, pose: Pose, seed: int = 0, detector=None) -> np.ndarray:
    """(H, W) float32 alpha in 0..1: the person in `image` whose skeleton is `pose`. `detector`:
    a BlazePose detector to ask for the learned mask (else one is built for this call)."""
    learned = learned_mask(image, pose, detector)
    return learned if learned is not None else grabcut_mask(image, pose, seed)


HUG = 3.0  # a cut-out's solid pixels lie within this many part thicknesses of the skeleton's bones ...
STRAY = 0.25  # ... all but this share of them at most (hair, a skirt, a held prop)


def hugs_the_skeleton(alpha: np.ndarray, pose: Pose) -> bool:
    """Whether an RGBA image's alpha (H, W) uint8 cuts out the person whose skeleton is `pose`
    (on the image's canvas): its solid part lies about the skeleton's body parts, all but STRAY
    of it within HUG part thicknesses of a bone. A photo whose transparency is not a cut-out (its
    sky's colour made transparent, a transparent frame around it) keeps the photo's background
    solid, far from the body. Measured on a copy of at most WORK_SIZE px."""
    import cv2

    h, w = alpha.shape
    s = min(1.0, WORK_SIZE / max(h, w))
    size = (max(round(w * s), 1), max(round(h * s), 1))
    solid = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA) >= 128 if s < 1.0 else alpha >= 128
    if not solid.any():
        return False
    yy, xx = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
    d = Shapes.of(pose.resized(*size)).distances(xx, yy).min(axis=0)  # in part thicknesses
    return float((d[solid] > HUG).mean()) <= STRAY


def segmenter():
    """BlazePose asked for several people (the skeleton picks ours) and their masks."""
    from posekit.pose.detect.blazepose import BlazePoseDetector

    return BlazePoseDetector(max_people=4)


def learned_mask(image: np.ndarray, pose: Pose, detector=None) -> np.ndarray | None:
    """The learned mask of the person whose skeleton is `pose`, refined; None when BlazePose finds
    no such person. `detector`: a `segmenter()` to use (else one is built for this call)."""
    own = detector is None
    detector = segmenter() if own else detector
    try:
        people = detector.detect_with_masks([image[:, :, :3]])[0]
    finally:
        if own:
            detector.close()
    mask = matching_mask(people, pose)
    return None if mask is None else refined(image, mask, pose)


def matching_mask(people: list, pose: Pose) -> np.ndarray | None:
    """The mask of the detected person (Pose, mask) nearest to `pose`, if near enough."""
    unit = pose.torso_size()
    if not np.isfinite(unit):
        box = pose.bbox()
        unit = max(box[3] - box[1], box[2] - box[0]) / 3 if box else np.inf
    best, best_d = None, MATCH
    for found, mask in people:
        both = found.visible & pose.visible
        if both.sum() < 2:
            continue
        d = np.median(np.linalg.norm(found.xy[both] - pose.xy[both], axis=1)) / max(unit, 1.0)
        if d < best_d:
            best, best_d = mask, d
    return best


def refined(image: np.ndarray, mask: np.ndarray, pose: Pose) -> np.ndarray:
    """The model's soft mask made crisp and anti-aliased along the photo's edges: a guided filter
    (the photo as guide) then a contrast stretch about 0.5; pieces off the skeleton dropped."""
    import cv2

    h, w = mask.shape
    if hasattr(cv2, "ximgproc"):
        radius = max(2, round(max(h, w) / 160))
        mask = cv2.ximgproc.guidedFilter(np.ascontiguousarray(image[:, :, :3]), mask.astype(np.float32), radius, 1e-3)
    alpha = np.clip((mask - 0.5) * 2.5 + 0.5, 0.0, 1.0).astype(np.float32)
    core = seed_mask(pose) == cv2.GC_FGD
    keep = connected_to((alpha > 0.5).astype(np.uint8), core)
    keep = cv2.dilate(keep, np.ones((3, 3), np.uint8))  # the soft rim around what is kept
    alpha = np.maximum(alpha * keep, small_holes(alpha * keep > 0.5, HOLE))
    return without_pockets(image, alpha, pose)


RIM = 0.9  # alpha of a mask pixel of the background's colour too thin to take away: not solid (SOLID)
MARGIN = 0.15  # GrabCut sees the mask's box grown by this share of its long side (at least 16 px)
POCKET_SIZE = 384  # long side of that box GrabCut runs at (at most)
FAR = 2.0  # a piece of the mask in colours unlike the skeleton's core reaching this many part thicknesses
NEAR = 0.75  # from every bone is someone else's; it goes where it lies beyond this many (nearer: the person's)
EDGE = 4  # rows of the photo's edge GrabCut sees past it where the photo cuts the person
CORE = 0.5  # the skeleton's core, surely the person: within this many part thicknesses of a bone


def without_pockets(image: np.ndarray, alpha: np.ndarray, pose: Pose, iterations: int = 3) -> np.ndarray:
    """`alpha` less the pockets of background the learned mask takes with the person (its soft,
    low-resolution edge bridges the concave places: between the neck and a shoulder, an arm and
    the body, the thighs): GrabCut, started from the mask (the skeleton's core surely the
    person, what the mask leaves out surely not), says which of the mask's pixels are the
    background's colours; those it takes away in pieces at least 3 px thick (not a pixel of the
    rim) go, with a pixel of soft edge. It only takes away, never from the skeleton's core, and
    leaves no piece apart from the skeleton's. A piece of another person the mask took along
    (`someone_else`) goes too, where it lies beyond NEAR part thicknesses of the bones, and so does
    a pocket that reaches the photo's edge where it cuts the person (`past_the_edge`). GrabCut
    runs on the mask's box with a margin of the background around it (the background's colours
    near the person are the ones that matter), scaled to at most POCKET_SIZE: a fraction of a
    second on a CPU (a run more for each of those two, when the photo cuts the person and when
    the mask reaches FAR from the bones)."""
    import cv2

    fg = alpha > 0.5
    if not fg.any() or fg.all():
        return alpha
    h, w = alpha.shape
    ys, xs = np.nonzero(alpha >= 0.05)
    m = max(16, round(MARGIN * max(ys.max() - ys.min(), xs.max() - xs.min())))
    y0, y1, x0, x1 = max(ys.min() - m, 0), min(ys.max() + m + 1, h), max(xs.min() - m, 0), min(xs.max() + m + 1, w)
    a, f = alpha[y0:y1, x0:x1], fg[y0:y1, x0:x1]
    ch, cw = a.shape
    s = min(1.0, POCKET_SIZE / max(ch, cw))
    size = (max(round(cw * s), 1), max(round(ch * s), 1))
    small = cv2.resize(np.ascontiguousarray(image[y0:y1, x0:x1, :3]), size, interpolation=cv2.INTER_AREA)
    sa = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
    d = core_distance(Shapes.of(pose.cropped(x0, y0, cw, ch).resized(*size)), xx, yy)
    labels = np.full(sa.shape, cv2.GC_PR_BGD, np.uint8)
    labels[sa < 0.05] = cv2.GC_BGD
    labels[sa > 0.5] = cv2.GC_PR_FGD
    labels[(sa > 0.5) & (d < CORE)] = cv2.GC_FGD
    if not (labels == cv2.GC_FGD).any() or not (labels == cv2.GC_BGD).any():
        return alpha
    said = grabcut_background(small, labels, iterations)
    sides = [e and bool(f[r].any()) for e, r in zip((y0 == 0, y1 == h, x0 == 0, x1 == w), SIDES)]
    if any(sides):
        said = np.maximum(said, past_the_edge(small, labels, sides, iterations))
    far = (labels == cv2.GC_PR_FGD) & (d >= FAR)
    if far.any():
        said = np.maximum(said, someone_else(small, labels, far, iterations) * (d >= NEAR))
    d = cv2.resize(d, (cw, ch), interpolation=cv2.INTER_LINEAR)
    core = f & (d < CORE)
    background = (f & ~core & (cv2.resize(said, (cw, ch), interpolation=cv2.INTER_LINEAR) > 0.5)).astype(np.uint8)
    removed = cv2.morphologyEx(background, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(np.float32)
    # the thinner bits (a pixel of the rim) stay, short of solid: decontamination gives them the person's colour
    a = np.where(background > 0, np.minimum(a, RIM), a)
    a = (a * (1 - cv2.GaussianBlur(removed, (0, 0), 0.7))).astype(np.float32)
    # what the removal cut off from the skeleton's pieces (a sliver beyond a pocket) goes too
    keep = cv2.dilate(connected_to((a > 0.5).astype(np.uint8), core), np.ones((3, 3), np.uint8))
    out = alpha.copy()
    out[y0:y1, x0:x1] = a * keep
    return out


SIDES = (np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1])  # an array's top, bottom, left and right edges


def past_the_edge(image: np.ndarray, labels: np.ndarray, sides: list[bool], iterations: int = 3) -> np.ndarray:
    """(H, W) float32: 1 on the pockets that reach a side of the photo where it cuts the person
    (`sides`: top, bottom, left, right, as SIDES). Such a pocket (between the thighs, the photo
    cut above the knees) has the mask on three sides and nothing past the edge, so GrabCut took it
    for the person. Here GrabCut sees EDGE rows of the edge's own colours past it (probable
    background: the background goes on past the edge), and the mask's pieces it then calls
    background, at least 3 px thick, that touch the edge are pockets."""
    import cv2

    pad = [EDGE * s for s in sides]  # top, bottom, left, right: copyMakeBorder's order
    h, w = labels.shape
    said = grabcut_background(cv2.copyMakeBorder(image, *pad, cv2.BORDER_REPLICATE),
                              cv2.copyMakeBorder(labels, *pad, cv2.BORDER_CONSTANT, value=cv2.GC_PR_BGD), iterations)
    said = said[pad[0]:pad[0] + h, pad[2]:pad[2] + w] * (labels == cv2.GC_PR_FGD)
    pockets = cv2.morphologyEx(said.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    edge = np.zeros(labels.shape, bool)
    for s, r in zip(sides, SIDES):
        edge[r] |= s
    return connected_to(pockets, edge).astype(np.float32)


def someone_else(image: np.ndarray, labels: np.ndarray, far: np.ndarray, iterations: int = 3) -> np.ndarray:
    """(H, W) float32: 1 on the pieces of the mask (`labels`' probable foreground) that are another
    person's (behind the subject, the learned mask takes their head or shoulder with the subject's;
    a person in the background is no pocket: GrabCut, started from the mask, learns their colours
    as the subject's). GrabCut started from the skeleton's core alone (the rest of the mask
    probable background) says which of the mask's pixels are not the subject's colours; those in
    pieces at least 3 px thick that reach `far` (FAR part thicknesses from every bone, farther
    than a pocket between the limbs) are someone else's. The subject's own clothes of other
    colours lie nearer the bones, or are apart from such a reach."""
    import cv2

    mask = labels == cv2.GC_PR_FGD
    other = grabcut_background(image, np.where(mask, cv2.GC_PR_BGD, labels), iterations) * mask
    other = cv2.morphologyEx(other.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return connected_to(other, far).astype(np.float32)


def grabcut_background(image: np.ndarray, labels: np.ndarray, iterations: int) -> np.ndarray:
    """(H, W) float32: 1 where GrabCut, started from `labels` (kept as they are), says background."""
    import cv2

    labels = labels.astype(np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    cv2.grabCut(image, labels, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    return np.isin(labels, (cv2.GC_BGD, cv2.GC_PR_BGD)).astype(np.float32)


NECK = 0.6  # the head core (CORE of its thickness) shrunk to 0.12 shoulder widths: inside a neck (half-width about 0.15)


def core_distance(shapes: Shapes, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Each pixel's distance to the nearest part, in part thicknesses, for the skeleton's core
    (`without_pockets`): the head's bones count at NECK of its thickness, as its first bone
    (neck to nose) runs through the neck, narrower than the head; the torso only inside its quad
    (above the shoulders' line are the gaps beside the neck; the shoulders' tops are the upper
    arms'). Else the core took the gap between the neck and a shoulder: a pocket of 150-220 px
    of the photo's background on each side of the neck (a 384 x 512 photo) stayed, opaque."""
    import cv2

    d = shapes.distances(xx, yy)
    d[PART_INDEX["head"]] /= NECK
    if shapes.torso is not None:
        inside = np.zeros(xx.shape, np.uint8)
        cv2.fillPoly(inside, [np.round(shapes.torso).astype(np.int32)], 1)
        d[PART_INDEX["torso"]][inside == 0] = np.inf
    return d.min(axis=0)


HOLE = 0.01  # an enclosed gap smaller than this share of the person is a hole in the mask, not a gap


def small_holes(fg: np.ndarray, share: float) -> np.ndarray:
    """(H, W) float32: 1 on the background pieces enclosed by `fg` whose area is under `share` of
    fg's (a dark patch of hair the model missed), not on gaps such as between an arm and the body."""
    import cv2

    bg = np.pad((~fg).astype(np.uint8), 1, constant_values=1)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bg, connectivity=4)
    small = stats[:, cv2.CC_STAT_AREA] < share * max(int(fg.sum()), 1)
    small[labels[0, 0]] = False
    return small[labels[1:-1, 1:-1]].astype(np.float32)


def grabcut_mask(image: np.ndarray, pose: Pose, seed: int = 0, iterations: int = 5) -> np.ndarray:
    """(H, W) float32 alpha in 0..1 from GrabCut seeded by the skeleton `pose`."""
    import cv2

    h, w = image.shape[:2]
    s = min(1.0, WORK_SIZE / max(h, w))
    small = cv2.resize(image[:, :, :3], (max(round(w * s), 1), max(round(h * s), 1)), interpolation=cv2.INTER_AREA)
    seeds = seed_mask(pose.resized(small.shape[1], small.shape[0]))
    cv2.setRNGSeed(seed)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    if (seeds == cv2.GC_FGD).any() and np.isin(seeds, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
        cv2.grabCut(np.ascontiguousarray(small), seeds, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    fg = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # drop 1-px threads
    fg = connected_to(fg, seeds == cv2.GC_FGD)
    alpha = cv2.resize(fg.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, 0.6 / s))
    return np.clip((alpha - 0.5) * 2.0 + 0.5, 0.0, 1.0)


def seed_mask(pose: Pose) -> np.ndarray:
    """GrabCut's starting labels for the canvas of `pose`."""
    import cv2

    shapes = Shapes.of(pose)
    yy, xx = np.mgrid[0:pose.height, 0:pose.width].astype(np.float32)
    d = shapes.distances(xx, yy).min(axis=0)  # in part thicknesses
    seeds = np.full((pose.height, pose.width), cv2.GC_PR_BGD, np.uint8)
    seeds[d < 1.2] = cv2.GC_PR_FGD
    seeds[d < 0.35] = cv2.GC_FGD
    seeds[d > 2.0] = cv2.GC_BGD
    return seeds


def connected_to(mask: np.ndarray, core: np.ndarray) -> np.ndarray:
    """Keep the blobs of `mask` that touch `core` (drops stray background bits GrabCut kept)."""
    import cv2

    n, labels = cv2.connectedComponents(mask, connectivity=8)
    keep = np.unique(labels[core & (mask > 0)])
    keep = keep[keep > 0]
    return np.isin(labels, keep).astype(np.uint8)


SOLID = 0.95  # alpha from which a pixel is the person's own colour, not mixed with the background


def decontaminated(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The photo with the person's soft edge (alpha under SOLID) given the colour of the nearest
    solid pixel of the person: an edge pixel of the photo mixes the person with the old
    background, which cut out over a new one (transparent, a flat colour) shows as a rim of the
    old background's colour. The pixels outside the person take it too: resampling (the warp,
    scaling) mixes neighbours' colours into the edge, and theirs must be the person's as well."""
    import cv2

    solid = alpha >= SOLID
    edge = ~solid
    if not solid.any() or not edge.any():
        return image
    _, nearest = cv2.distanceTransformWithLabels((~solid).astype(np.uint8), cv2.DIST_L2, 5,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(solid)  # label k is the k-th solid pixel in raster order
    out = image.copy()
    k = nearest[edge] - 1
    out[edge] = image[ys[k], xs[k]]
    return out
