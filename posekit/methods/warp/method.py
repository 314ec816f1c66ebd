"""The warp method: a classical puppet warp of the photo, CPU only, no weights.

In the spirit of Meta's Animated Drawings, for a photo:
1. cut the person out (BlazePose's learned person mask, picked and kept by the skeleton, with
   GrabCut seeded from the skeleton as the fallback; `segment.py`),
2. cut the body into parts along the limbs (each pixel goes to the nearest part; `rig.py`),
3. fill the hole the person leaves in the background (inpainting plus the photo's own grain;
   `plate.py`), or make it transparent or a flat colour,
4. per target pose, move each part with the transform its bone takes from the source pose to the
   target pose and draw the parts back to front (legs, torso, head, arms). The torso's four
   corners land exactly on the target's shoulders and hips (its affine fit plus a bilinear pull,
   `rig.QuadWarp`), so it meets each limb at its joint with no step or wedge of background; seen
   side on, where the shoulders and hips fall on top of each other, it keeps a body's depth
   (`rig.kept_depth`) instead of shrinking to a sliver. The parts of one limb
   are warped together with weights that blend their transforms smoothly across the knee or
   elbow (linear blend skinning, inverted at the output pixel), so joints bend without seams.
   Specks the warp carries off alone (a wisp of background the mask gave a little alpha) are
   dropped before the figure goes over the background (`without_specks`).
5. one camera for the whole clip (`camera.py`): one scale and offset, chosen in `__call__` from
   all the targets, that keeps the clip's figure inside the frame (a body the photo cuts stays
   cut at the frame's edge); `frame_pose` gives the targets in those frame pixels.

Steps 1-3 run once per clip in the constructor; each frame is a handful of `cv2.remap` calls.

    method = WarpMethod(photo, pose, WarpOptions(background="keep"))
    frames = method(target_poses)   # RGB uint8 (RGBA with background="transparent")
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posekit.errors import UsageError
from posekit.methods import long_side_at_most
from posekit.methods.warp.camera import Camera, Outline, clip_camera
from posekit.methods.warp.plate import average_fill, background_plate
from posekit.methods.warp.rig import (LAYERS, PART_INDEX, PARTS, QuadWarp, Shapes, apply, part_transforms,
                                     source_maps, then)
from posekit.images import is_cut_out, to_rgb
from posekit.methods.warp.segment import decontaminated, hugs_the_skeleton, person_mask
from posekit.pose.pose import INDEX, Pose

BLEND = 0.35  # softness of the blend between two parts of a limb, in part thicknesses
# A piece of the figure apart from the rest and smaller than a square this many shoulder widths
# on a side (the thinnest part's half-width, a forearm's: 0.2) is a speck, not a part, and is dropped: the
# smallest part that can come loose, a hand (about 0.47 x 0.22 shoulder widths), has 2.5 times
# that area
SPECK = min(p.thickness for p in PARTS)


def without_specks(alpha: np.ndarray, least_area: float) -> np.ndarray:
    """(H, W) float32 1/0: where to keep the figure's `alpha` (0..1). Its pieces are the connected
    (8-neighbour) regions of what shows at all (alpha at least half a level of 255), so a piece's
    soft rim goes with it; pieces under `least_area` pixels are dropped (a wisp of the photo's
    background between the knees, which the mask gave a little alpha and the warp carried off
    alone), except the largest, which is the body."""
    import cv2

    seen = (alpha * 255 >= 0.5).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(seen, connectivity=8)
    if n <= 2:
        return np.ones(alpha.shape, np.float32)
    areas = stats[:, cv2.CC_STAT_AREA].copy()
    areas[0] = 0
    keep = areas >= least_area
    keep[0], keep[int(areas.argmax())] = True, True  # the background (no alpha anyway), the body
    return keep[labels].astype(np.float32)


def parse_background(background: str) -> str | tuple[int, int, int]:
    """'keep' | 'transparent' | '#rrggbb' -> 'keep', 'transparent' or an RGB tuple."""
    b = background.strip().lower()
    if b in ("keep", "transparent"):
        return b
    if b.startswith("#") and len(b) == 7:
        try:
            return tuple(int(b[i:i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            pass
    raise UsageError(f"--background {background!r}: use keep, transparent or a colour like #20a0ff")


@dataclass(frozen=True)
class WarpOptions:
    """What `--method warp` takes from the command line."""

    background: str = "keep"  # keep | transparent | #rrggbb: what fills the place the person leaves
    seed: int = 0  # GrabCut's random start

    def __post_init__(self):
        parse_background(self.background)  # a bad colour fails before any work


class WarpMethod:
    """Puppet-warp one person photo into target poses (see the module docstring). `mask`: the
    person's (H, W) alpha in 0..1 when it is known already (else `segment.person_mask` asks
    BlazePose for it)."""

    Options = WarpOptions

    @staticmethod
    def load(options: WarpOptions | None = None):
        """The person segmenter (BlazePose with its segmentation output), shared by a batch of
        photos: building it costs about 0.7 s. The caller closes it."""
        from posekit.methods.warp.segment import segmenter

        return segmenter()

    def __init__(self, source_image: np.ndarray, source_pose: Pose, options: WarpOptions | None = None,
                 models=None, *, mask: np.ndarray | None = None):
        options = options or WarpOptions()
        self.image = to_rgb(source_image)  # a cut-out on white, as the detector saw it
        h, w = self.image.shape[:2]
        self.pose = source_pose.fitted(w, h)
        if mask is None and is_cut_out(source_image) and hugs_the_skeleton(source_image[:, :, 3], self.pose):
            mask = source_image[:, :, 3].astype(np.float32) / 255  # a cut-out's own alpha is the person's exact mask
        # any other photo with transparency (padded, a transparent border, a palette's transparent
        # sky colour) is a photo: on white, as the detector saw it, and segmented as any photo
        self.background = parse_background(options.background)
        self.alpha = (person_mask(self.image, self.pose, seed=options.seed, detector=models) if mask is None
                      else np.float32(mask))
        self.shapes = Shapes.of(self.pose)
        self.labels, self.layer_labels = self._part_labels()
        self.plate = self._background_plate()
        # each layer's own source alpha: its parts, plus a cap of the neighbouring parts around
        # the joints it shares with them (so a limb that swings away leaves no hole behind it)
        # cut out over a new background, the soft edge takes the person's colour, not the old background's
        colours = self.image if self.background == "keep" else decontaminated(self.image, self.alpha)
        self.rgba = [np.dstack([colours, self._layer_alpha(layer)]) for layer in LAYERS]
        torso = LAYERS.index(("torso",))
        self.rgba[torso] = self._torso_under_limbs(self.rgba[torso])
        self.outline = Outline.of(self.alpha, self.labels, len(PARTS))
        self.camera, self.viewed_plate = Camera(), self.plate  # set per clip by __call__ (or fit_camera)
        self.camera_fixed = False

    # -- set-up (once per clip) ---------------------------------------------------------
    def _part_labels(self) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """(H, W) index of the part each source pixel belongs to (the nearest part, limbs cut
        square at the knee and elbow), and per limb layer the same choice among its own parts
        only (which of them a pixel borrowed from a neighbouring layer moves with)."""
        h, w = self.alpha.shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        d = self.shapes.distances(xx, yy, cut_joints=True)
        per_layer = []
        for layer in LAYERS:
            ids = np.array([PART_INDEX[n] for n in layer])
            per_layer.append(ids[d[ids].argmin(axis=0)].astype(np.uint8) if len(ids) > 1 else None)
        return d.argmin(axis=0).astype(np.uint8), per_layer

    def _layer_alpha(self, layer: tuple[str, ...]) -> np.ndarray:
        import cv2

        ids = [PART_INDEX[n] for n in layer]
        own = np.isin(self.labels, ids)
        if layer == ("torso",):
            # The torso keeps a cap around its joints (shoulders, hips, neck): the half-disc on
            # its own side, which the limb covered and leaves bare when it swings away. The
            # other half is the limb (a sleeve's top): kept, it would float beside the arm.
            xy = self.pose.xy
            h, w = own.shape
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            r = max(0.25 * self.shapes.scale, 2.0)
            centre = self.shapes.torso.mean(axis=0) if self.shapes.torso is not None else None
            for name in ("r_shoulder", "l_shoulder", "r_hip", "l_hip", "neck"):
                p = xy[INDEX[name]]
                if np.isnan(p).any():
                    continue
                dx, dy = xx - p[0], yy - p[1]
                cap = dx * dx + dy * dy < r * r
                if centre is not None and np.linalg.norm(centre - p) > 1:
                    u = (centre - p) / np.linalg.norm(centre - p)
                    cap &= dx * u[0] + dy * u[1] > -0.2 * r
                own |= cap
        # overlap the neighbouring layers by a few pixels: two half-transparent edges meeting at
        # a part boundary would let the background show through as a seam
        # (a limb grows into the torso only: bits of the other leg or arm would come along)
        grow = max(3, int(0.04 * self.shapes.scale))
        own = cv2.dilate(own.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2)) > 0
        if layer != ("torso",):
            own &= np.isin(self.labels, ids + [PART_INDEX["torso"]])
        return (own * self.alpha * 255).round().astype(np.uint8)

    def _torso_under_limbs(self, rgba: np.ndarray) -> np.ndarray:
        """The torso layer completed under what covers it in the photo (an arm across the chest):
        the person's pixels in (and just around) the torso quad that belong to another part are filled from the
        torso's own pixels (a smooth average of them, never the background) and made opaque, so
        a limb that moves away uncovers the body's texture, not a hole."""
        import cv2

        if self.shapes.torso is None:
            return rgba
        quad = np.zeros(self.labels.shape, np.uint8)
        cv2.fillPoly(quad, [np.round(self.shapes.torso).astype(np.int32)], 1)
        grow = max(1, round(0.5 * PARTS[0].thickness * self.shapes.scale))  # clothes reach past the joints
        quad = cv2.dilate(quad, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
        own = self.labels == PART_INDEX["torso"]
        covered = (quad > 0) & ~own & (self.alpha > 0.5)
        known = own & (self.alpha > 0.9)
        if not covered.any() or not known.any():
            return rgba
        fill = average_fill(self.image, (~known).astype(np.uint8))
        out = rgba.copy()
        out[covered, :3] = fill[covered]
        out[covered, 3] = np.maximum(out[covered, 3], (self.alpha[covered] * 255).round().astype(np.uint8))
        return out

    def _background_plate(self) -> np.ndarray:
        """The frame behind the person: the photo with the person removed (`plate.py`),
        transparent, or a flat colour."""
        h, w = self.alpha.shape
        if self.background == "transparent":
            return np.zeros((h, w, 4), np.uint8)
        if isinstance(self.background, tuple):
            return np.broadcast_to(np.uint8(self.background), (h, w, 3)).copy()
        return background_plate(self.image, self.alpha)

    # -- per frame ------------------------------------------------------------------------
    @staticmethod
    def working_size(width: int, height: int, options=None) -> tuple[int, int]:
        """The size the photo is scaled to before the warp: a long side of at most 1024 px."""
        return long_side_at_most(width, height, 1024)

    def frame_pose(self, pose: Pose) -> Pose:
        """A target pose (on the photo's canvas) in the frame's pixels: through the camera the
        last clip given to `__call__` chose (the photo's own view before that)."""
        h, w = self.alpha.shape
        return self.camera.pose(pose.fitted(w, h))

    def __call__(self, targets: list[Pose]) -> list[np.ndarray]:
        """The frames of a clip, all through one camera (see the module docstring): the clip's
        own, or the one `fit_camera` fixed."""
        if not self.camera_fixed:
            self._choose_camera(targets)
        return [self.frame(t) for t in targets]

    def fit_camera(self, targets: list[Pose]) -> None:
        """Fix one camera for all these targets (every clip of one sheet, so the character keeps
        one size and place across them); later calls keep it instead of choosing their own."""
        self._choose_camera(targets)
        self.camera_fixed = True

    def _choose_camera(self, targets: list[Pose]) -> None:
        h, w = self.alpha.shape
        self.camera = clip_camera(self.outline, [self._transforms(t) for t in targets], w, h)
        self.viewed_plate = self._viewed_plate()

    def _transforms(self, target: Pose) -> list[np.ndarray]:
        """Each part's 2x3 transform from the photo to `target` on the photo's canvas."""
        h, w = self.alpha.shape
        return part_transforms(self.pose.xy, target.fitted(w, h).xy)

    def frame(self, target: Pose) -> np.ndarray:
        """The person moved into `target` (a pose on the photo's canvas), seen through the camera."""
        h, w = self.alpha.shape
        c = self.camera.matrix()
        tf = [then(m, c) for m in self._transforms(target)]
        moved = self.shapes.moved(tf)
        moved.scale *= self.camera.scale
        # the figure alone (colour premultiplied by its alpha), then over the plate: the same
        # as drawing each layer over the plate in turn, with the specks dropped in between
        colour = np.zeros((h, w, 3), np.float32)
        alpha = np.zeros((h, w), np.float32)
        for layer, rgba, labels in zip(LAYERS, self.rgba, self.layer_labels):
            ids = [PART_INDEX[n] for n in layer]
            box = self._layer_box(rgba[:, :, 3], [tf[i] for i in ids])
            if box is None:
                continue
            x0, y0, x1, y1 = box
            warped = self._warp_layer(rgba, labels, ids, tf, moved, box)
            a = warped[:, :, 3:4].astype(np.float32) / 255
            colour[y0:y1, x0:x1] = warped[:, :, :3] * a + colour[y0:y1, x0:x1] * (1 - a)
            alpha[y0:y1, x0:x1] = a[:, :, 0] + alpha[y0:y1, x0:x1] * (1 - a[:, :, 0])
        keep = without_specks(alpha, (SPECK * moved.scale) ** 2)
        colour *= keep[:, :, None]
        alpha *= keep
        plate = self.viewed_plate
        colour += plate[:, :, :3] * (1 - alpha[:, :, None])
        if plate.shape[2] == 4:
            alpha += plate[:, :, 3].astype(np.float32) / 255 * (1 - alpha)
        if self.background != "transparent":
            return np.clip(colour, 0, 255).round().astype(np.uint8)
        # PNG, GIF and WebP hold straight colour: un-premultiply, or every soft edge is darkened
        # by its transparency (a dark rim around the sprite on a light game background)
        straight = colour / np.maximum(alpha, 1e-6)[:, :, None]
        rgb = np.where(alpha[:, :, None] > 0, np.clip(straight, 0, 255), 0).round().astype(np.uint8)
        return np.dstack([rgb, (alpha * 255).round().astype(np.uint8)])

    def _viewed_plate(self) -> np.ndarray:
        """The background plate through the camera (the photo mirrored where it looks past its edge)."""
        import cv2

        if self.camera.is_identity() or self.background == "transparent" or isinstance(self.background, tuple):
            return self.plate
        h, w = self.plate.shape[:2]
        return cv2.warpAffine(self.plate, self.camera.matrix(), (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)

    def _layer_box(self, layer_alpha: np.ndarray, transforms: list[np.ndarray]):
        """Where the layer can land in the frame: its source box carried by each of its parts'
        transforms (clipped to the frame), or None when the layer is empty."""
        import cv2

        x, y, bw, bh = cv2.boundingRect((layer_alpha > 0).astype(np.uint8))
        if bw == 0 or bh == 0:
            return None
        corners = np.float64([[x, y], [x + bw, y], [x, y + bh], [x + bw, y + bh]])
        # a QuadWarp's pull is a blend of its corners' shifts, so no pixel lands further than
        # the largest of them from where the affine alone puts it
        pts = np.vstack([apply(m.affine if isinstance(m, QuadWarp) else m, corners) for m in transforms])
        pad = 2 + max([int(np.ceil(np.abs(m.shift).max())) for m in transforms if isinstance(m, QuadWarp)], default=0)
        h, w = layer_alpha.shape
        x0, y0 = np.clip(np.floor(pts.min(0)).astype(int) - pad, 0, [w, h])
        x1, y1 = np.clip(np.ceil(pts.max(0)).astype(int) + pad, 0, [w, h])
        return None if x1 <= x0 or y1 <= y0 else (int(x0), int(y0), int(x1), int(y1))

    def _warp_layer(self, rgba, labels, ids, tf, moved: Shapes, box) -> np.ndarray:
        """Sample the layer for every pixel of `box`: each output pixel p reads the source at
        sum_k w_k(p) * inverse(T_k)(p), the weights w_k falling off with p's distance to part k
        where the target pose put it."""
        import cv2

        x0, y0, x1, y1 = box
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        reads = [source_maps(tf[i], xx, yy) for i in ids]
        if len(ids) == 1:
            return cv2.remap(rgba, *reads[0], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        d = moved.distances(xx, yy, ids)
        d = np.where(np.isfinite(d), d, 1e6)
        weights = np.exp(-(d - d.min(axis=0, keepdims=True)) ** 2 / (2 * BLEND ** 2))
        # A part only pulls on the pixels it owns: those its own inverse transform reads from
        # the figure in its own source region, or from the round cap of the joint it shares with its
        # neighbour. Without this, past a bent elbow (as far from the upper arm as from the
        # forearm) the upper arm's transform, read on, shows a ghost of the forearm; with the cap,
        # the outside of the bend is filled like a puppet's round joint.
        joint = self.pose.xy[PARTS[ids[0]].bones[0][1]]  # the elbow or knee
        cap = PARTS[ids[0]].thickness * self.shapes.scale
        for n, k in enumerate(ids):
            lab = cv2.remap(labels, *reads[n], cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=255)
            owned = lab == k
            if not np.isnan(joint).any():
                owned |= np.hypot(reads[n][0] - joint[0], reads[n][1] - joint[1]) < cap
            # ... and reads the figure there: `labels` split the whole plane among the layer's
            # parts, so beside a bent elbow both parts owned the background they read, and the
            # blend of those two reads landed between them, on the forearm near the elbow (a
            # skin-coloured spike off the elbow, outside the bend)
            owned &= cv2.remap(rgba[:, :, 3], *reads[n], cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=0) > 0
            weights[n] *= owned
        total = weights.sum(axis=0)
        weights /= np.maximum(total, 1e-6)
        mx = sum(w * m[0] for w, m in zip(weights, reads)).astype(np.float32)
        my = sum(w * m[1] for w, m in zip(weights, reads)).astype(np.float32)
        out = cv2.remap(rgba, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        out[:, :, 3] = np.where(total > 1e-6, out[:, :, 3], 0)
        return out
