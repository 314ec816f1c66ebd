"""The puppet rig: body parts as shapes around the skeleton, and the transform each part takes.

A part is a set of bones (keypoint index pairs) plus a thickness relative to the shoulder width.
The warp method labels the source pixels by the nearest part (`part_segments`, `segment_distance`,
`torso_polygon`) and moves each part by its own transform (`part_transforms`): 2x3 affine matrices
mapping source pixels to target pixels, except the torso's, a `QuadWarp` (its affine fit with a
bilinear pull that puts each shoulder and hip exactly where the limbs join it) when both poses
show its four corners; its width across the spine never falls below a body's depth (`kept_depth`:
a side view's shoulders and hips on top of each other). `apply`, `then` and `source_maps` take
either kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posekit.pose.motions.body import smoothstep
from posekit.pose.pose import INDEX, Pose


@dataclass(frozen=True)
class Part:
    name: str
    bones: tuple[tuple[int, int], ...]  # segments that make up the part's shape
    thickness: float  # half-width of the part, in shoulder widths
    parent: str | None  # whose transform to borrow when this part's joints are missing
    extend: float = 0.0  # the last bone reaches this much further (a hand past the wrist, a foot)


def _b(a: str, b: str) -> tuple[int, int]:
    return INDEX[a], INDEX[b]


PARTS = (
    Part("torso", (_b("neck", "r_hip"), _b("neck", "l_hip"), _b("r_shoulder", "l_shoulder"),
                   _b("r_hip", "l_hip"), _b("r_shoulder", "r_hip"), _b("l_shoulder", "l_hip")), 0.22, None),
    Part("head", (_b("neck", "nose"), _b("nose", "r_eye"), _b("nose", "l_eye"), _b("r_eye", "r_ear"),
                  _b("l_eye", "l_ear")), 0.40, "torso"),
    Part("r_upper_arm", (_b("r_shoulder", "r_elbow"),), 0.22, "torso"),
    Part("r_forearm", (_b("r_elbow", "r_wrist"),), 0.20, "r_upper_arm", extend=0.35),
    Part("l_upper_arm", (_b("l_shoulder", "l_elbow"),), 0.22, "torso"),
    Part("l_forearm", (_b("l_elbow", "l_wrist"),), 0.20, "l_upper_arm", extend=0.35),
    Part("r_thigh", (_b("r_hip", "r_knee"),), 0.30, "torso"),
    Part("r_shin", (_b("r_knee", "r_ankle"),), 0.26, "r_thigh", extend=0.25),
    Part("l_thigh", (_b("l_hip", "l_knee"),), 0.30, "torso"),
    Part("l_shin", (_b("l_knee", "l_ankle"),), 0.26, "l_thigh", extend=0.25),
)
PART_INDEX = {p.name: i for i, p in enumerate(PARTS)}
CHILD = {"r_upper_arm": "r_forearm", "l_upper_arm": "l_forearm", "r_thigh": "r_shin", "l_thigh": "l_shin"}
TORSO_POINTS = [INDEX[n] for n in ("neck", "r_shoulder", "l_shoulder", "r_hip", "l_hip")]
HEAD_POINTS = [INDEX[n] for n in ("neck", "nose", "r_eye", "l_eye", "r_ear", "l_ear")]

# Drawing order, back to front: legs behind the torso, the head and arms in front of it. Each
# layer warps its parts together, so the knee and the elbow bend smoothly inside one layer.
LAYERS = (("r_thigh", "r_shin"), ("l_thigh", "l_shin"), ("torso",), ("head",),
          ("r_upper_arm", "r_forearm"), ("l_upper_arm", "l_forearm"))


def body_scale(pose: Pose) -> float:
    """Shoulder width in pixels (the unit of part thickness), with fallbacks for partial poses."""
    xy = pose.xy
    rs, ls = xy[INDEX["r_shoulder"]], xy[INDEX["l_shoulder"]]
    if not (np.isnan(rs).any() or np.isnan(ls).any()):
        return max(float(np.linalg.norm(rs - ls)), 4.0)
    torso = pose.torso_size()
    if np.isfinite(torso):
        return max(torso / 1.6, 4.0)
    box = pose.bbox()
    return max((box[3] - box[1]) / 4 if box else min(pose.size) / 6, 4.0)


def completed(pose: Pose, scale: float) -> np.ndarray:
    """(18, 2) keypoints with missing hips guessed below the shoulders (an upper-body photo still
    has a torso reaching down out of the frame) and missing knees below the hips (a portrait cut
    at the thighs: they are thighs, not the nearest forearm); other missing points stay NaN."""
    xy = pose.xy
    rs, ls = xy[INDEX["r_shoulder"]], xy[INDEX["l_shoulder"]]
    if not (np.isnan(rs).any() or np.isnan(ls).any()):
        across = ls - rs
        down = np.array([across[1], -across[0]])  # perpendicular, pointing down for an upright body
        if down[1] < 0:
            down = -down
        down = down / max(np.linalg.norm(down), 1e-6) * 1.8 * scale
        for hip, sho in (("r_hip", rs), ("l_hip", ls)):
            if np.isnan(xy[INDEX[hip]]).any():
                xy[INDEX[hip]] = sho + down + (ls - rs) * (0.15 if hip == "r_hip" else -0.15)
        for hip, knee in (("r_hip", "r_knee"), ("l_hip", "l_knee")):
            if np.isnan(xy[INDEX[knee]]).any() and not np.isnan(xy[INDEX[hip]]).any():
                xy[INDEX[knee]] = xy[INDEX[hip]] + down / 1.8 * 1.3
    return xy


def part_segments(part: Part, xy: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The part's bones whose both ends are known (the last one extended for hands and feet)."""
    segs = []
    for k, (i, j) in enumerate(part.bones):
        a, b = xy[i], xy[j]
        if np.isnan(a).any() or np.isnan(b).any():
            continue
        if part.extend and k == len(part.bones) - 1:
            b = b + (b - a) * part.extend
        segs.append((a, b))
    return segs


def segment_distance(xx: np.ndarray, yy: np.ndarray, a: np.ndarray, b: np.ndarray, cut_start=False,
                     cut_end=False, cut: float = 0.0) -> np.ndarray:
    """Distance from each pixel to the segment a-b; with cut_start / cut_end, pixels beyond that
    end (past the plane through it, square to the bone) are `cut` further away."""
    ab = b - a
    t = ((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / max(float(ab @ ab), 1e-9)
    tc = np.clip(t, 0.0, 1.0)
    d = np.hypot(xx - (a[0] + tc * ab[0]), yy - (a[1] + tc * ab[1]))
    if cut_start:
        d = np.where(t < 0, d + cut, d)
    if cut_end:
        d = np.where(t > 1, d + cut, d)
    return d


def torso_polygon(xy: np.ndarray) -> np.ndarray | None:
    pts = xy[[INDEX["r_shoulder"], INDEX["l_shoulder"], INDEX["l_hip"], INDEX["r_hip"]]]
    return None if np.isnan(pts).any() else pts


@dataclass
class Shapes:
    """Each part's segments (list of (a, b) per part) and the torso quad, in one pose's pixels."""

    segments: list[list[tuple[np.ndarray, np.ndarray]]]
    torso: np.ndarray | None
    scale: float

    @classmethod
    def of(cls, pose: Pose) -> "Shapes":
        scale = body_scale(pose)
        xy = completed(pose, scale)
        return cls([part_segments(p, xy) for p in PARTS], torso_polygon(xy), scale)

    def moved(self, transforms: list[np.ndarray]) -> "Shapes":
        """The shapes carried by each part's transform (the target-side geometry of a warp)."""
        segs = []
        for m, part in zip(transforms, self.segments):
            ends = apply(m, np.float64([p for seg in part for p in seg]).reshape(-1, 2)) if part else []
            segs.append([(ends[2 * i], ends[2 * i + 1]) for i in range(len(part))])
        torso = None if self.torso is None else apply(transforms[0], self.torso)
        return Shapes(segs, torso, self.scale)

    def distances(self, xx: np.ndarray, yy: np.ndarray, parts=None, cut_joints: bool = False) -> np.ndarray:
        """(len(parts), *xx.shape) distance of each pixel to each part, in part thicknesses (inf
        where the part has no bone). Inside the torso quad the torso's distance is the distance to
        the quad's edges or the neck, at most 0.75: a limb lying across the chest keeps its whole
        width there, while the limbs and head that join the torso there do not take its corners.

        cut_joints: the upper limb ends at the knee or elbow and the lower limb starts there (a
        clean cut square to the bone), so that no sliver of one lies past the joint in the other."""
        import cv2

        parts = range(len(PARTS)) if parts is None else parts
        out = np.full((len(parts),) + xx.shape, np.inf, np.float32)
        for n, k in enumerate(parts):
            if not self.segments[k]:
                continue
            child = CHILD.get(PARTS[k].name)
            cut_end = cut_joints and child is not None and bool(self.segments[PART_INDEX[child]])
            cut_start = cut_joints and PARTS[k].name in CHILD.values() and bool(self.segments[PART_INDEX[PARTS[k].parent]])
            # past the cut a part is one thickness further away, not out of reach: in the wedge
            # outside a bent joint, beyond both cuts, the limb still beats the torso
            cut = PARTS[k].thickness * self.scale
            d = np.minimum.reduce([segment_distance(xx, yy, a, b, cut_start, cut_end, cut) for a, b in self.segments[k]])
            out[n] = d / (PARTS[k].thickness * self.scale)
            if k == 0 and self.torso is not None:
                inside = np.zeros(xx.shape, np.uint8)
                x0, y0 = float(xx.flat[0]), float(yy.flat[0])
                cv2.fillPoly(inside, [np.round(self.torso - (x0, y0)).astype(np.int32)], 1)
                quad = self.torso
                edges = [segment_distance(xx, yy, quad[i], quad[(i + 1) % 4]) for i in range(4)]
                # + the neck: the first torso bone starts there (else at a corner, on the edges)
                edges = np.minimum.reduce(edges + [segment_distance(xx, yy, a, a) for a, _ in self.segments[k][:1]])
                edges = edges / (PARTS[k].thickness * self.scale)
                out[n] = np.where(inside > 0, np.minimum(edges, 0.75), out[n])
        return out


# -- transforms -------------------------------------------------------------------------
def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation (2x3) taking src points to dst."""
    sc, dc = src.mean(0), dst.mean(0)
    s, d = src - sc, dst - dc
    denom = float((s ** 2).sum())
    if denom < 1e-9:
        return np.float64([[1, 0, dc[0] - sc[0]], [0, 1, dc[1] - sc[1]]])
    a = float((s * d).sum()) / denom  # s*cos
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / denom  # s*sin
    m = np.float64([[a, -b], [b, a]])
    return np.column_stack([m, dc - m @ sc])


def rigid(m: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The similarity `m` with its scale taken out, re-centred so the points' centroids match."""
    r = m[:, :2] / max(np.sqrt(abs(np.linalg.det(m[:, :2]))), 1e-9)
    return np.column_stack([r, dst.mean(0) - r @ src.mean(0)])


def affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares affine (2x3) taking src points to dst; falls back to a similarity when the
    points are (nearly) collinear, where an affine is undetermined."""
    if len(src) >= 3:
        sv = np.linalg.svd(src - src.mean(0), compute_uv=False)
        if sv[1] > 0.15 * sv[0]:
            a = np.column_stack([src, np.ones(len(src))])
            m, *_ = np.linalg.lstsq(a, dst, rcond=None)
            return m.T
    return similarity(src, dst)


def bone_transform(a: np.ndarray, b: np.ndarray, a2: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """Take bone a-b onto a2-b2: rotate, stretch along the bone only (so a foreshortened limb
    keeps its thickness), translate."""
    u = b - a
    v = b2 - a2
    lu, lv = np.linalg.norm(u), np.linalg.norm(v)
    if lu < 1e-6 or lv < 1e-6:
        return np.float64([[1, 0, a2[0] - a[0]], [0, 1, a2[1] - a[1]]])
    stretch = np.clip(lv / lu, 0.3, 3.0)
    eu, ev = u / lu, v / lv
    fu = np.float64([[eu[0], eu[1]], [-eu[1], eu[0]]])  # world -> bone frame
    fv = np.float64([[ev[0], -ev[1]], [ev[1], ev[0]]])  # bone frame -> world
    m = fv @ np.diag([stretch, 1.0]) @ fu
    return np.column_stack([m, a2 - m @ a])


CORNER_SHIFT = 0.3  # how far (shoulder widths) a torso corner may be pulled off the torso's affine fit
LEAST_STRETCH = 0.3  # the least det(I - J) of the pull anywhere: how much a target area may shrink


@dataclass(frozen=True)
class QuadWarp:
    """The torso's transform: its affine fit `affine` (2x3), with each corner of the target's
    torso quad pulled onto the target's own shoulder or hip. `quad` (4, 2): the target's corners
    (r_shoulder, l_shoulder, l_hip, r_hip); `shift` (4, 2): each corner's pull, spread over the
    quad bilinearly; a pixel outside the quad takes the pull of the quad's point nearest to it
    (so the pull never grows past the corners' and, beyond an edge, only slides along it). A
    target pixel p reads the source at affine^-1(p - pull(p)): the source's corners land exactly
    on the target's, and unlike a homography the waist is not stretched when only the hips widen.
    `corners_exact` keeps p -> p - pull(p) one-to-one (see `least_stretch`)."""

    affine: np.ndarray
    quad: np.ndarray
    shift: np.ndarray

    def pull(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u, v = unit_square(self.quad, *nearest_in(self.quad, x, y))
        w = ((1 - u) * (1 - v), u * (1 - v), u * v, (1 - u) * v)
        shift = self.shift.tolist()
        return sum(wk * s[0] for wk, s in zip(w, shift)), sum(wk * s[1] for wk, s in zip(w, shift))

    def least_stretch(self, n: int = 40) -> float:
        """The smallest det(I - J) of the pull (J its Jacobian) on an n x n grid of the quad and
        just outside each of its edges: how much the map p -> p - pull(p) shrinks an area at
        worst. Above 0 it is one-to-one (no fold). Further out the pull only repeats its edges'
        (constant along their normals) or, past a corner, the corner's (constant)."""
        q = self.quad
        s = np.linspace(1e-3, 1 - 1e-3, n)
        u, v = (t.ravel() for t in np.meshgrid(s, s))
        w = ((1 - u) * (1 - v), u * (1 - v), u * v, (1 - u) * v)
        x, y = sum(wk * c[0] for wk, c in zip(w, q)), sum(wk * c[1] for wk, c in zip(w, q))
        turn = np.sign(_cross(q).sum())
        xs, ys = [x], [y]
        for k in range(4):
            e = q[(k + 1) % 4] - q[k]
            out = -turn * np.float64([-e[1], e[0]]) / max(np.linalg.norm(e), 1e-9)  # outward normal
            xs.append(q[k][0] + s * e[0] + out[0])
            ys.append(q[k][1] + s * e[1] + out[1])
        return float(stretch(self, np.concatenate(xs), np.concatenate(ys)).min())


def stretch(m: QuadWarp, x: np.ndarray, y: np.ndarray, h: float = 1e-2) -> np.ndarray:
    """det(I - J) of the pull of `m` at points x, y (forward differences h pixels long)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    px, py = m.pull(x, y)
    ax, ay = m.pull(x + h, y)
    bx, by = m.pull(x, y + h)
    return (1 - (ax - px) / h) * (1 - (by - py) / h) - ((bx - px) / h) * ((ay - py) / h)


def nearest_in(quad: np.ndarray, x: np.ndarray, y: np.ndarray):
    """The point of the convex `quad` nearest to each point x, y (the point itself inside)."""
    inside = None
    best = bx = by = None
    turn = np.sign(_cross(quad).sum())
    for k in range(4):
        a, b = quad[k].tolist(), quad[(k + 1) % 4].tolist()
        ex, ey = b[0] - a[0], b[1] - a[1]
        hx, hy = x - a[0], y - a[1]
        side = turn * (ex * hy - ey * hx) >= 0  # on the quad's side of this edge
        inside = side if inside is None else inside & side
        t = np.clip((hx * ex + hy * ey) / max(ex * ex + ey * ey, 1e-12), 0.0, 1.0)
        qx, qy = a[0] + t * ex, a[1] + t * ey
        d = (x - qx) ** 2 + (y - qy) ** 2
        if best is None:
            best, bx, by = d, qx, qy
        else:
            closer = d < best
            best, bx, by = np.where(closer, d, best), np.where(closer, qx, bx), np.where(closer, qy, by)
    return np.where(inside, x, bx), np.where(inside, y, by)


def unit_square(quad: np.ndarray, x: np.ndarray, y: np.ndarray):
    """(u, v) in [0, 1] of points x, y inside the convex `quad` in the bilinear map of the unit
    square onto it (corners in order (0, 0), (1, 0), (1, 1), (0, 1)). With h = p - quad[0],
    h = u e + v f + u v g; crossing h - v f = u (e + v g) with e + v g leaves a quadratic in v;
    of its two roots, the one whose (u, v) lies in the square."""
    # plain floats: the arithmetic stays in the grid's float32
    p0, e, f = quad[0].tolist(), (quad[1] - quad[0]).tolist(), (quad[3] - quad[0]).tolist()
    g = (quad[0] - quad[1] + quad[2] - quad[3]).tolist()
    hx, hy = x - p0[0], y - p0[1]
    k2 = g[0] * f[1] - g[1] * f[0]
    k1 = (e[0] * f[1] - e[1] * f[0]) + (hx * g[1] - hy * g[0])
    k0 = hx * e[1] - hy * e[0]
    root = np.sqrt(np.maximum(k1 * k1 - 4 * k0 * k2, 0))
    big = -0.5 * (k1 + np.where(k1 >= 0, root, -root))  # the stable way round
    big = np.where(np.abs(big) > 1e-12, big, 1e-12)
    best = None
    for v in (k0 / big, big / k2 if abs(k2) > 1e-12 else None):
        if v is None:
            continue
        ax, ay = e[0] + v * g[0], e[1] + v * g[1]
        u = ((hx - v * f[0]) * ax + (hy - v * f[1]) * ay) / np.maximum(ax * ax + ay * ay, 1e-12)
        off = np.maximum(np.abs(u - 0.5), np.abs(v - 0.5))  # 0.5 or less: in the square
        if best is None:
            best = (u, v, off)
        else:
            take = off < best[2]
            best = (np.where(take, u, best[0]), np.where(take, v, best[1]), np.minimum(off, best[2]))
    return np.clip(best[0], 0.0, 1.0), np.clip(best[1], 0.0, 1.0)


def corners_exact(src: np.ndarray, dst: np.ndarray, m: np.ndarray):
    """The torso's affine fit `m` with the corners of the source's torso quad pulled exactly onto
    the target's (a `QuadWarp`): the limbs hang from the target's shoulders and hips, and a torso
    that only fits them on average leaves a step at each joint (its hip inside the thigh's, a
    wedge of background between a hanging arm and the waist). A corner moves at most CORNER_SHIFT
    shoulder widths. Where the pulls would fold the torso (shoulders wide, hips narrow, the hips
    pulled apart by more than they are wide: an area shrunk below LEAST_STRETCH), they are all
    scaled down until it is not, and the corners miss by what was taken off. `m` itself when a
    quad is missing or twisted (a side view's crossed shoulders)."""
    a, b = torso_polygon(src), torso_polygon(dst)
    if a is None or b is None or not (_convex(a) and _convex(b)):
        return m
    fit = apply(m, a)
    limit = CORNER_SHIFT * max(np.linalg.norm(b[0] - b[1]), 1e-6)
    shift = b - fit
    shift *= np.minimum(1.0, limit / np.maximum(np.linalg.norm(shift, axis=1), 1e-9))[:, None]

    def fits(scale: float):
        q = QuadWarp(m, fit + scale * shift, scale * shift)
        return q if _convex(q.quad) and q.least_stretch() >= LEAST_STRETCH else None

    q = fits(1.0)
    if q is None:  # the largest safe scale, by bisection (a fold grows with the pulls)
        lo, hi = 0.0, 1.0
        for _ in range(6):
            mid = (lo + hi) / 2
            if fits(mid) is None:
                hi = mid
            else:
                lo = mid
        q = fits(lo) if lo > 0 else None
    if q is None or np.abs(q.shift).max() < 0.05:
        return m
    return q


def _cross(quad: np.ndarray) -> np.ndarray:
    d = np.roll(quad, -1, axis=0) - quad
    return d[:, 0] * np.roll(d, -1, axis=0)[:, 1] - d[:, 1] * np.roll(d, -1, axis=0)[:, 0]


def _convex(quad: np.ndarray) -> bool:
    """The four points go round one way (no crossing, no fold) and enclose some area."""
    cross = _cross(quad)
    area = abs(cross.sum())
    return bool((cross > 0).all() or (cross < 0).all()) and area > 1e-3 * float(np.ptp(quad, axis=0).max() ** 2)


TORSO_DEPTH = 0.6  # a torso's depth front to back, in its widths across (chest and waist: 0.6-0.7)
MIRRORED = -0.5  # a torso fit this far mirrored across (a negative width) or more is a back view


def spine(xy: np.ndarray) -> np.ndarray | None:
    """Unit vector down the torso: neck to the hips' midpoint, else square to the shoulders
    (pointing down the image); None when neither is known."""
    neck = xy[INDEX["neck"]]
    hips = [xy[INDEX[n]] for n in ("r_hip", "l_hip") if not np.isnan(xy[INDEX[n]]).any()]
    if hips and not np.isnan(neck).any():
        d = np.mean(hips, axis=0) - neck
    else:
        rs, ls = xy[INDEX["r_shoulder"]], xy[INDEX["l_shoulder"]]
        if np.isnan(rs).any() or np.isnan(ls).any():
            return None
        d = np.float64([ls[1] - rs[1], rs[0] - ls[0]])
        d = d if d[1] >= 0 else -d
    n = float(np.linalg.norm(d))
    return None if n < 1e-6 else d / n


def kept_depth(m: np.ndarray, src: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The torso's affine fit `m` (from the source's torso `points`) kept at least TORSO_DEPTH
    of the photo's width across the spine. A body is about that deep front to back, so that is
    the least it shows when it turns; the skeleton's shoulders and hips, seen side on, lie on top
    of each other and give a fit about 0 wide or mirrored (below 0), which left the shirt a sliver
    and the upper body floating over the legs. A fit that wide already is kept as it is; the
    width is taken about the points' centroid, so the fit still lands there; a fit mirrored
    beyond MIRRORED (the subject's back) stays mirrored."""
    down = spine(src)
    if down is None:
        return m
    lin = m[:, :2]
    down_t = lin @ down
    if np.linalg.norm(down_t) < 1e-6:
        return m
    down_t = down_t / np.linalg.norm(down_t)
    across, across_t = np.float64([-down[1], down[0]]), np.float64([-down_t[1], down_t[0]])
    c = float(across_t @ lin @ across)  # the fit's width across the spine, as a share of the photo's
    if abs(c) >= TORSO_DEPTH:
        return m
    wide = -TORSO_DEPTH if c < MIRRORED else TORSO_DEPTH
    extra = (wide - c) * np.outer(across_t, across)
    centre = points.mean(axis=0)
    return np.column_stack([lin + extra, m[:, 2] - extra @ centre])


# lengths that turning the body does not shorten (unlike the shoulder width): neck to nose, each
# upper arm; their median target / source ratio is the torso's scale along the spine without hips
UPRIGHT_BONES = ((INDEX["neck"], INDEX["nose"]), (INDEX["r_shoulder"], INDEX["r_elbow"]),
                 (INDEX["l_shoulder"], INDEX["l_elbow"]))


def upright_ratio(src: np.ndarray, dst: np.ndarray) -> float | None:
    """The median target / source length ratio of the UPRIGHT_BONES both poses show (None: none)."""
    ratios = []
    for i, j in UPRIGHT_BONES:
        if not (np.isnan(src[[i, j]]).any() or np.isnan(dst[[i, j]]).any()):
            a = float(np.linalg.norm(src[j] - src[i]))
            if a > 1e-6:
                ratios.append(float(np.linalg.norm(dst[j] - dst[i])) / a)
    return float(np.median(ratios)) if ratios else None


def shoulders_fit(src: np.ndarray, dst: np.ndarray, idx: list[int]) -> np.ndarray | None:
    """The torso's transform when the hips are missing on one side or the other (a portrait cut
    at the chest) and both show the shoulders: the source's spine (`spine`) turned onto the
    target's, scaled across it by the shoulders' width ratio (signed: crossed shoulders mirror
    it) and along it by the larger of that and `upright_ratio`; then `kept_depth`; the torso
    points `idx`' centroid lands on the target's. The least-squares fit of the neck and shoulders
    alone took their scale along the spine too, and a side view (the shoulders on top of each
    other) shrank the torso to a seventh of its height, to a point when they coincide, or turned
    it upside down when they crossed (a similarity cannot mirror): a portrait's chest, cut by the
    photo's bottom edge, ended far above the frame's. None without both shoulders in both poses."""
    rs, ls = INDEX["r_shoulder"], INDEX["l_shoulder"]
    down = spine(src)
    if rs not in idx or ls not in idx or down is None:
        return None
    down_t = spine(dst)
    down_t = np.float64([0, 1]) if down_t is None else down_t  # the shoulders on top of each other: upright
    across, across_t = np.float64([-down[1], down[0]]), np.float64([-down_t[1], down_t[0]])
    width = float((src[ls] - src[rs]) @ across)
    if abs(width) < 1e-6:
        return None
    c = float((dst[ls] - dst[rs]) @ across_t) / width
    upright = upright_ratio(src, dst)
    along = abs(c) if upright is None else max(abs(c), upright)
    lin = along * np.outer(down_t, down) + c * np.outer(across_t, across)
    m = np.column_stack([lin, dst[idx].mean(axis=0) - lin @ src[idx].mean(axis=0)])
    return kept_depth(m, src, src[idx])


HIPS = (INDEX["r_hip"], INDEX["l_hip"])
FACE_PAIRS = ((INDEX["r_eye"], INDEX["l_eye"]), (INDEX["r_ear"], INDEX["l_ear"]))
# the band of face widths (the target's eyes' or ears' span, in neck-to-nose lengths, as a share
# of the photo's) over which the head goes from the fit of the face points (TURNING and wider) to
# upright on the body (TURNED and narrower). The built-in front and three-quarter views show
# 1.05-1.19 of the photo's (the figure and the astronaut), above the band; a face turned with the
# body shows 0.33-0.57 of it just before its far eye and ear are hidden (yaw 59), below the band.
TURNED, TURNING = 0.6, 0.95


def _shown(xy: np.ndarray, i: int) -> bool:
    return not np.isnan(xy[i]).any()


def head_centre(xy: np.ndarray) -> np.ndarray | None:
    """The middle of the head: the mean of the eyes' and the ears' midpoints; None without eyes
    and ears. A pair that lacks one side has the shown point for its midpoint where the other
    pair lacks one too (a side view: seen side on, both sides lie there); where the other pair
    shows both sides (a face from the front, BlazePose dropping one ear), the shown point moved
    along that pair's line onto its perpendicular bisector, the face's midline: the ear alone
    put the middle a quarter of the ears' span off to its side, and, the target's side view
    showing one ear as it should, moved the head that far forward."""
    full = [(i, j) for i, j in FACE_PAIRS if _shown(xy, i) and _shown(xy, j)]
    mids = []
    for i, j in FACE_PAIRS:
        shown = [xy[k] for k in (i, j) if _shown(xy, k)]
        if len(shown) == 2:
            mids.append(np.mean(shown, axis=0))
        elif shown:
            other = [(a, b) for a, b in full if (a, b) != (i, j)]
            p = shown[0]
            if other:
                a, b = xy[other[0][0]], xy[other[0][1]]
                d = b - a
                n2 = float(d @ d)
                if n2 > 1e-9:
                    p = p - (float((p - (a + b) / 2) @ d) / n2) * d
            mids.append(p)
    return np.mean(mids, axis=0) if mids else None


def face_width(xy: np.ndarray, pairs=FACE_PAIRS) -> float | None:
    """How wide the face shows, in neck-to-nose lengths: the largest span of the eye and ear
    `pairs` shown whole; 0 when each lacks a side (a side view); None without the neck or nose."""
    neck, nose = xy[INDEX["neck"]], xy[INDEX["nose"]]
    if np.isnan(neck).any() or np.isnan(nose).any():
        return None
    length = float(np.linalg.norm(nose - neck))
    spans = [float(np.linalg.norm(xy[i] - xy[j])) for i, j in pairs if _shown(xy, i) and _shown(xy, j)]
    return max(spans, default=0.0) / max(length, 1e-6)


def face_ratio(src: np.ndarray, dst: np.ndarray) -> float | None:
    """How wide the target's face shows as a share of the photo's (`face_width`), both measured
    on the pairs the photo shows whole: a photo missing one ear (BlazePose often drops one) is
    measured by its eyes on both sides. None without the neck or nose on either side or a face
    the photo shows no pair of whole (a profile photo)."""
    pairs = [(i, j) for i, j in FACE_PAIRS if _shown(src, i) and _shown(src, j)]
    ws, wt = face_width(src, pairs), face_width(dst, pairs)
    if ws is None or wt is None or ws < 1e-6:
        return None
    return wt / ws


def turn_weight(ratio: float) -> float:
    """How far the head goes from the fit of the face points (0) to upright on the body (1) at
    a face width `ratio` (`face_ratio`): 1 at TURNED and below, 0 at TURNING and above, a
    smoothstep between, so a face turning away frame by frame turns the head gradually."""
    return 1.0 - smoothstep(ratio, TURNED, TURNING)


def turned_head(src: np.ndarray, dst: np.ndarray, fit: np.ndarray | None = None) -> np.ndarray | None:
    """The head's transform when the photo shows the face from the front and the target turns it
    away (its face narrower than TURNING of the photo's, `face_ratio`; a side view hides one eye
    and ear: 0). Upright on the body: turned as the spine turns (`spine`; upright when the
    target's is unknown), the photo's head centre (`head_centre`) onto the target's. A fit of the
    face points put the target's profile nose, in front of the neck, where the photo's nose sits
    above it, and cocked the whole head 16-34 degrees forward (the figure's and the astronaut's
    side walks and runs); a frontal face cannot turn into a profile, and the head stays upright
    on the body. Between TURNING and TURNED the head goes from the plain `fit` to upright by
    `turn_weight`: its angle and where its centre lands interpolated, so a face turning frame by
    frame does not make the head jump (it jumped 11-16 degrees between neighbouring degrees of
    yaw at 0.5 of the photo's width, the figure and the astronaut). None where the plain fit
    holds (front and three-quarter views, whose face turns to the camera; a profile photo; a
    head or a photo's spine not shown)."""
    ratio = face_ratio(src, dst)
    down, cs, ct = spine(src), head_centre(src), head_centre(dst)
    if ratio is None or down is None or cs is None or ct is None:
        return None
    w = turn_weight(ratio)
    if w <= 0.0:
        return None
    down_t = spine(dst)
    down_t = np.float64([0, 1]) if down_t is None else down_t
    cos, sin = float(down @ down_t), float(down[0] * down_t[1] - down[1] * down_t[0])
    if fit is not None and w < 1.0:
        angle = float(np.arctan2(fit[1, 0], fit[0, 0]))
        angle += w * ((np.arctan2(sin, cos) - angle + np.pi) % (2 * np.pi) - np.pi)
        cos, sin = float(np.cos(angle)), float(np.sin(angle))
        ct = (1 - w) * (fit[:, :2] @ cs + fit[:, 2]) + w * ct
    r = np.float64([[cos, -sin], [sin, cos]])
    return np.column_stack([r, ct - r @ cs])


def part_transforms(src: np.ndarray, dst: np.ndarray) -> list:
    """One transform per part taking the source pose's part onto the target's: 2x3 affines, the
    torso's a `QuadWarp` when both poses show its four corners. A part whose joints are missing
    on either side borrows its parent's transform (identity for the torso). `apply`, `then` and
    `source_maps` take either kind."""
    both = ~(np.isnan(src).any(1) | np.isnan(dst).any(1))
    out: list = []
    for part in PARTS:
        m = None
        if part.name == "torso":
            idx = [i for i in TORSO_POINTS if both[i]]
            if idx:
                m = shoulders_fit(src, dst, idx) if not any(i in idx for i in HIPS) else None
                if m is None:
                    m = kept_depth(affine(src[idx], dst[idx]), src, src[idx])
                m = corners_exact(src, dst, m)
        elif part.name == "head":
            idx = [i for i in HEAD_POINTS if both[i]]
            if len(idx) >= 2:
                # rotation and translation only: the neck-to-nose distance shrinks when the head
                # nods or the clip leans towards the camera, the head itself does not
                m = rigid(similarity(src[idx], dst[idx]), src[idx], dst[idx])
            turned = turned_head(src, dst, m)
            m = m if turned is None else turned
        else:
            i, j = part.bones[0]
            if both[i] and both[j]:
                m = bone_transform(src[i], src[j], dst[i], dst[j])
        if m is None:
            m = out[PART_INDEX[part.parent]] if part.parent else np.float64([[1, 0, 0], [0, 1, 0]])
        out.append(m)
    return out


def invert(m: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine."""
    a = np.vstack([m, [0, 0, 1]])
    return np.linalg.inv(a)[:2]


def then(first, second: np.ndarray):
    """The transform `first` (2x3 or QuadWarp) followed by the affine `second` (a camera)."""
    if isinstance(first, QuadWarp):
        return QuadWarp(then(first.affine, second), apply(second, first.quad), first.shift @ second[:, :2].T)
    return np.column_stack([second[:, :2] @ first[:, :2], second[:, :2] @ first[:, 2] + second[:, 2]])


def apply(m, pts: np.ndarray, steps: int = 12) -> np.ndarray:
    """(N, 2) points through a 2x3 affine or a QuadWarp. A QuadWarp's forward map, the p with
    p - pull(p) = affine(q), is found by Newton's method, each step halved until it brings p
    closer: `corners_exact` keeps det(I - J) of the pull above 0, so there is one such p."""
    if not isinstance(m, QuadWarp):
        return pts @ m[:, :2].T + m[:, 2]
    base = np.asarray(apply(m.affine, pts), np.float64)
    bx, by = base[:, 0], base[:, 1]

    def miss(x, y):
        px, py = m.pull(x, y)
        return x - px - bx, y - py - by, px, py

    dx, dy = m.pull(bx, by)
    x, y = bx + dx, by + dy
    rx, ry, px, py = miss(x, y)
    h = 1e-3
    for _ in range(steps):
        err = np.hypot(rx, ry)
        if err.max(initial=0) < 1e-6:
            break
        ax, ay = m.pull(x + h, y)
        cx, cy = m.pull(x, y + h)
        # the Jacobian of p - pull(p), by forward differences
        j11, j21 = 1 - (ax - px) / h, -(ay - py) / h
        j12, j22 = -(cx - px) / h, 1 - (cy - py) / h
        d = j11 * j22 - j12 * j21
        ok = np.abs(d) > 1e-3
        d = np.where(ok, d, 1.0)
        sx = np.where(ok, (j22 * rx - j12 * ry) / d, rx)
        sy = np.where(ok, (-j21 * rx + j11 * ry) / d, ry)
        todo = np.ones(len(x), bool)
        for t in (1.0, 0.5, 0.25, 0.125, 0.0625):
            nx, ny = x - t * sx, y - t * sy
            nrx, nry, npx, npy = miss(nx, ny)
            take = todo & (np.hypot(nrx, nry) < err)
            x, y, rx, ry = np.where(take, nx, x), np.where(take, ny, y), np.where(take, nrx, rx), np.where(take, nry, ry)
            px, py = np.where(take, npx, px), np.where(take, npy, py)
            todo &= ~take
            if not todo.any():
                break
    return np.column_stack([x, y])


def source_maps(m, xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 maps (for cv2.remap) of where each target pixel xx, yy reads the source under `m`."""
    if isinstance(m, QuadWarp):
        dx, dy = m.pull(xx, yy)
        xx, yy, m = xx - dx, yy - dy, m.affine
    inv = invert(m)
    return ((inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]).astype(np.float32),
            (inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]).astype(np.float32))
