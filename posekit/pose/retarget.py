"""Retargeting: move a clip of poses onto the subject's own body.

A driving skeleton that does not fit the subject (longer legs, narrower shoulders, standing
elsewhere in the frame) is what most often ruins a pose-guided animation: the method has to
stretch the person to fit. `retarget(clip, onto)` keeps the clip's *motion* (its joint
directions, its bounce and travel) and gives it the subject's *body* (limb lengths, size and
place in the photo):

1. Scale. The overall scale `s` is the median, over the body measures both skeletons show
   (torso, shoulder width, neck to nose, upper arm, thigh, shin), of subject / clip. The clip's
   side of each ratio is its 90th-percentile length over the clip: the limb at its least
   foreshortened, yet robust to a few bad detections.
2. Limbs. The skeleton is rebuilt from the neck outwards: every bone keeps its direction in
   each frame and is scaled by its own ratio subject / clip, so at full extension it has the
   subject's length. Ratios are clamped to [s / 1.5, 1.5 s] (a bone foreshortened in the photo
   or in the clip must not make an arm twice as long; [s / 2, 2 s] for the head, whose size
   varies more between people and photos), and a bone the subject does not show
   takes the ratio of its mirror twin (left/right), else `s`.
   The torso is the exception: the two neck-to-hip bones would keep the clip's hip width
   relative to its torso length (a long-waisted subject would get hips as much wider as its
   torso is longer). Instead the neck-to-mid-hip vector keeps its direction (the lean) and is
   scaled by the torso length ratio, and the hip line keeps its direction and its length
   relative to the clip's own reference hip width (the hips' turn in a three-quarter view) and
   is scaled by the hip width ratio; so at its widest the retargeted hip line has the photo's
   hip width. Without both hips in the photo the hip width takes the shoulder width's ratio
   (the clip's hip-to-shoulder proportion), else `s`. A clip frame that lost one hip (detectors
   often drop one in a side-ish view) borrows it from the clip's hip line, interpolated between
   the nearest frames that show both: the hip it has and the lost hip's leg are placed as with
   both hips, and the borrowed hip is left out again.
3. Position. The neck follows the clip's horizontal travel scaled by `s`, around the subject's
   own neck. Vertically the feet go on the subject's ground line (the lower ankle of the
   photo); a clip frame whose feet are off the ground (a jump, a run's flight) keeps its
   height above the ground, scaled by `s` (damped for a partial subject, see 4).
4. Partial subjects (head-and-shoulders photos). Without ankles in the photo (this also covers a
   full-body photo whose ankles were not detected) the ground line is where the subject's feet
   would be: the clip's tallest standing frame is put with its neck exactly on the subject's
   neck. The measures that exist (shoulder width, neck to nose, arms)
   give the scale. A keypoint the photo does not show that lands outside the photo in most
   frames is dropped from every frame: no method can show a leg the photo does not have, and
   a ControlNet skeleton with legs below the frame makes Stable Diffusion invent them.
   Keypoints the photo lacks that land inside it (an arm hidden behind the body) are kept.
   Such a subject bobs rather than leaps: the clip's lift above the ground (a jump's flight) is
   multiplied by one factor for the whole clip so that it peaks at BOB = 3% of the figure's
   visible height (its top keypoint to the photo's bottom edge), about the bob of a walk. The
   photo's edge cuts the body, and a cut lifted into view would show; the one camera per clip
   would have to crop every frame by the whole lift (55 px of a 330-px portrait for the
   built-in jump), cutting off the hands. The crouch and the timing are kept. A clip frame
   without ankles (a detector loses them in a blurred flight) lifts by its neck's rise above
   the standing neck, damped by the same factor (the factor is set so that these lifts stay
   within BOB too).
5. Missing points in the clip stay missing; a point whose parent is missing hangs from its
   nearest present ancestor. A clip frame with no neck and no shoulders is scaled as a whole.
6. Facing. A side-on clip walking right, put on a side-on photo of someone facing left, is
   mirrored first (`mirror=None`, automatic); front and three-quarter views are never flipped.

The output poses live on the subject's canvas (onto.width x onto.height).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from posekit.errors import PosekitError
from posekit.pose.pose import INDEX, LIMBS, Pose

CLAMP = 1.5          # a bone's ratio stays within [s / CLAMP, s * CLAMP]
HEAD_CLAMP = 2.0     # looser for the head: faces vary more than limbs, and get foreshortened less
REFERENCE_PERCENTILE = 90.0
BOB = 0.03           # a partial subject's lift above the ground, at most, of its visible height
PARTS = {"legs": ("r_knee", "r_ankle", "l_knee", "l_ankle"), "arms": ("r_elbow", "r_wrist", "l_elbow", "l_wrist")}
MOVES = 0.08         # a part moves when a joint wanders this far about the neck (torso sizes, std over a clip)

NECK, NOSE = INDEX["neck"], INDEX["nose"]
R_SHOULDER, L_SHOULDER = INDEX["r_shoulder"], INDEX["l_shoulder"]
R_HIP, L_HIP = INDEX["r_hip"], INDEX["l_hip"]
ANKLES = [INDEX["r_ankle"], INDEX["l_ankle"]]
PARENT = {child: parent for parent, child in LIMBS}  # LIMBS is a tree rooted at the neck

# Each limb's left/right twin (index into LIMBS), for bones the subject does not show.
_MIRROR = {(1, 2): (1, 5), (2, 3): (5, 6), (3, 4): (6, 7), (1, 8): (1, 11), (8, 9): (11, 12),
           (9, 10): (12, 13), (0, 14): (0, 15), (14, 16): (15, 17)}
_MIRROR.update({b: a for a, b in _MIRROR.items()})
TWIN = [LIMBS.index(_MIRROR[limb]) if limb in _MIRROR else None for limb in LIMBS]

_HEAD_BONES = {(1, 0), (0, 14), (14, 16), (0, 15), (15, 17)}

# Bones used for the overall scale (foreshortening-prone forearms and face points left out).
_SCALE_BONES = [LIMBS.index(b) for b in ((1, 0), (2, 3), (5, 6), (8, 9), (11, 12), (9, 10), (12, 13))]


class Flags(NamedTuple):
    """What a retargeting error's advice names, by the command that asked: the flag that gave the
    target poses, the one that gave the subject's pose, and how to do without retargeting (None:
    the command cannot)."""
    targets: str = "--poses"
    subject: str = "--source-pose"
    skip: str | None = "--no-retarget"


def retarget(clip: list[Pose], onto: Pose, mirror: bool | None = None, flags: Flags = Flags()) -> list[Pose]:
    """Each pose of `clip` on the subject `onto`'s limb lengths, scale and position (see the
    module docstring); the result is on onto's canvas. `mirror`: flip the clip left-right first;
    None (auto) flips a side-on clip that faces the other way from a side-on subject. `flags`:
    what an error names (animate's flags by default)."""
    if not clip:
        return []
    if mirror is None:
        mirror = _faces_the_other_way(clip, onto)
    if mirror:
        clip = [p.flip() for p in clip]
    subject = _with_neck(onto.xy[None])[0]
    if np.isnan(subject[NECK]).any():
        raise PosekitError("the subject's pose shows neither a neck nor both shoulders: nothing to "
                           f"anchor the motion to (pass {flags.subject} with a fuller pose)")
    xy = _with_neck(np.stack([p.fitted(*clip[0].size).xy for p in clip]))  # (T, 18, 2), NaN = missing
    conf = np.stack([p.fitted(*clip[0].size).confidence for p in clip])

    with warnings.catch_warnings():  # all-NaN slices (missing points) are expected here
        warnings.simplefilter("ignore", RuntimeWarning)
        s = overall_scale(xy, subject, flags)
        ratios = bone_ratios(xy, subject, s)
        torso = torso_ratios(xy, subject, s, ratios)
        necks = _clip_necks(xy)
        lines = _hip_lines(xy)
        body = np.stack([_rebuild(frame, neck, ratios, s, torso, line)
                         for frame, neck, line in zip(xy, necks, lines)])  # neck-relative
        out = body + _neck_track(xy, necks, body, subject, s, clip[0].height, onto.height)[:, None, :]

    drop = _out_of_picture(out, onto)
    conf = np.where(np.isnan(out).any(axis=2) | drop[None, :], 0.0, conf)
    return [Pose(np.column_stack([np.nan_to_num(o), c]), onto.width, onto.height) for o, c in zip(out, conf)]


def moving_parts_left_out(clip: list[Pose], retargeted: list[Pose]) -> list[str]:
    """The body parts ("legs", "arms") that move in `clip` (one of their joints wanders at least
    MOVES torso sizes about the neck over the clip: walk, run and jump move the legs; idle and
    wave do not) but that retargeting left out of every frame of `retargeted` (the photo does not
    show them and they land outside it, see 4): a walk for a head-and-shoulders photo."""
    out = []
    for part, names in PARTS.items():
        joints = [INDEX[n] for n in names]
        if any(p.visible[joints].any() for p in retargeted) or not clip:
            continue
        with warnings.catch_warnings():  # missing points are NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            about_neck = np.stack([(p.xy[joints] - p.xy[NECK]) / p.torso_size() for p in clip])  # (T, J, 2)
            wander = np.linalg.norm(np.nanstd(about_neck, axis=0), axis=-1)
        if np.nanmax(wander, initial=0.0) >= MOVES:
            out.append(part)
    return out


def facing(pose: Pose) -> int:
    """+1 when the person is seen side-on facing the image's right, -1 facing its left, 0 for a
    front or back view or when the points do not tell. Side-on: the shoulders overlap (closer
    than the neck-to-nose distance) and the nose is well off the ears' (or the neck's) line."""
    xy = _with_neck(pose.xy[None])[0]
    nose, neck = xy[NOSE], xy[NECK]
    if np.isnan(nose).any() or np.isnan(neck).any():
        return 0
    head = float(np.linalg.norm(nose - neck))
    shoulders = float(np.linalg.norm(xy[R_SHOULDER] - xy[L_SHOULDER]))  # NaN when one is hidden
    if head <= 0 or shoulders >= head:
        return 0
    ears = xy[[INDEX["r_ear"], INDEX["l_ear"]]]
    ears = ears[~np.isnan(ears).any(axis=1)]
    offset = nose[0] - (ears.mean(axis=0)[0] if len(ears) else neck[0])
    return int(np.sign(offset)) if abs(offset) > 0.4 * head else 0


def _faces_the_other_way(clip: list[Pose], onto: Pose) -> bool:
    subject = facing(onto)
    votes = sum(facing(p) for p in clip)
    return subject != 0 and votes != 0 and np.sign(votes) != subject


# -- measuring --------------------------------------------------------------------------------
def _with_neck(xy: np.ndarray) -> np.ndarray:
    """Fill a missing neck with the midpoint of the shoulders (as OpenPose defines the neck)."""
    xy = xy.copy()
    mid = (xy[:, R_SHOULDER] + xy[:, L_SHOULDER]) / 2.0
    gap = np.isnan(xy[:, NECK]).any(axis=1)
    xy[gap, NECK] = mid[gap]
    return xy


def _bone_lengths(xy: np.ndarray) -> np.ndarray:
    """(..., 17) bone lengths in LIMBS order, NaN where an end is missing."""
    a = xy[..., [i for i, _ in LIMBS], :]
    b = xy[..., [j for _, j in LIMBS], :]
    return np.linalg.norm(b - a, axis=-1)


def _measures(xy: np.ndarray) -> np.ndarray:
    """(..., 9) body measures: torso, shoulder width, then the _SCALE_BONES."""
    r, l = xy[..., R_HIP, :], xy[..., L_HIP, :]
    hips = np.where(np.isnan(r), l, np.where(np.isnan(l), r, (r + l) / 2.0))  # one hip will do
    torso = np.linalg.norm(hips - xy[..., NECK, :], axis=-1)
    shoulders = np.linalg.norm(xy[..., R_SHOULDER, :] - xy[..., L_SHOULDER, :], axis=-1)
    return np.concatenate([torso[..., None], shoulders[..., None], _bone_lengths(xy)[..., _SCALE_BONES]], axis=-1)


def _reference(values: np.ndarray) -> np.ndarray:
    """Per column, the clip's REFERENCE_PERCENTILE over frames (NaN where never measured)."""
    out = np.full(values.shape[1], np.nan)
    for j in range(values.shape[1]):
        col = values[:, j][~np.isnan(values[:, j])]
        if col.size:
            out[j] = np.percentile(col, REFERENCE_PERCENTILE)
    return out


def overall_scale(clip_xy: np.ndarray, subject_xy: np.ndarray, flags: Flags = Flags()) -> float:
    """Subject size / clip size: the median ratio over the measures both show (none: an error
    whose advice names `flags`)."""
    with np.errstate(all="ignore"):
        ratios = _measures(subject_xy[None])[0] / _reference(_measures(clip_xy))
    ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
    if ratios.size == 0:
        with np.errstate(all="ignore"):  # fall back on any bone both skeletons show
            ratios = _bone_lengths(subject_xy) / _reference(_bone_lengths(clip_xy))
        ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
    if ratios.size == 0:
        raise PosekitError(_no_shared_limb(clip_xy, subject_xy, flags))
    return float(np.median(ratios))


def _no_shared_limb(clip_xy: np.ndarray, subject_xy: np.ndarray, flags: Flags) -> str:
    """Why the subject cannot be measured against the motion, blaming the side at fault: target
    poses that show no limb in any frame (only a nose, say), else a subject that shows none, else
    two poses that show different limbs; the advice names the asking command's `flags`."""
    with np.errstate(all="ignore"):
        clip_limbs = np.nan_to_num(_bone_lengths(clip_xy)) > 0  # NaN (an end missing) -> 0
        subject_limbs = np.nan_to_num(_bone_lengths(subject_xy)) > 0
    skip = f", or {flags.skip} to use them as they are" if flags.skip else ""
    if not clip_limbs.any():
        return (f"the target poses ({flags.targets}) show no limb (two joints a bone joins) in any frame: nothing to "
                f"scale the motion by; pass poses with at least one limb{skip}")
    if not subject_limbs.any():
        return ("the subject's pose shows no limb (two joints a bone joins): nothing to measure the motion against "
                f"(pass {flags.subject} with a fuller pose)")
    return (f"cannot measure the subject against the target poses ({flags.targets}): they show no limb in common "
            f"(pass {flags.subject} with a fuller pose, target poses with more limbs{skip})")


def bone_ratios(clip_xy: np.ndarray, subject_xy: np.ndarray, s: float) -> np.ndarray:
    """(17,) output / clip length ratio of each bone: the subject's length over the clip's
    reference length, the mirror bone's ratio where the subject lacks it, else s; clamped."""
    with np.errstate(all="ignore"):
        raw = _bone_lengths(subject_xy) / _reference(_bone_lengths(clip_xy))
    raw = np.where(np.isfinite(raw) & (raw > 0), raw, np.nan)
    twin = np.array([raw[t] if t is not None else np.nan for t in TWIN])
    ratios = np.where(np.isnan(raw), twin, raw)
    ratios = np.where(np.isnan(ratios), s, ratios)
    clamp = np.array([HEAD_CLAMP if limb in _HEAD_BONES else CLAMP for limb in LIMBS])
    return np.clip(ratios, s / clamp, s * clamp)


def _torso_measures(xy: np.ndarray) -> np.ndarray:
    """(..., 3) torso length (neck to the midpoint of both hips), hip width, shoulder width;
    NaN where a point is missing."""
    mid = (xy[..., R_HIP, :] + xy[..., L_HIP, :]) / 2.0
    return np.stack([np.linalg.norm(mid - xy[..., NECK, :], axis=-1),
                     np.linalg.norm(xy[..., L_HIP, :] - xy[..., R_HIP, :], axis=-1),
                     np.linalg.norm(xy[..., L_SHOULDER, :] - xy[..., R_SHOULDER, :], axis=-1)], axis=-1)


def torso_ratios(clip_xy: np.ndarray, subject_xy: np.ndarray, s: float, ratios: np.ndarray) -> tuple[float, float]:
    """(torso length ratio, hip width ratio), output / clip: the subject's over the clip's
    reference; clamped. Without both hips in the photo the torso falls back on the neck-to-hip
    bones' `ratios` (as bone_ratios gives them), the hip width on the shoulder width's ratio,
    else on s."""
    with np.errstate(all="ignore"):
        raw = _torso_measures(subject_xy[None])[0] / _reference(_torso_measures(clip_xy))
    raw = np.where(np.isfinite(raw) & (raw > 0), raw, np.nan)
    torso = raw[0] if not np.isnan(raw[0]) else float(np.mean(ratios[[LIMBS.index((1, 8)), LIMBS.index((1, 11))]]))
    hips = raw[1] if not np.isnan(raw[1]) else raw[2] if not np.isnan(raw[2]) else s
    return float(np.clip(torso, s / CLAMP, s * CLAMP)), float(np.clip(hips, s / CLAMP, s * CLAMP))


# -- rebuilding ---------------------------------------------------------------------------------
def _clip_necks(xy: np.ndarray) -> np.ndarray:
    """(T, 2) the clip's neck per frame; frames without one use the clip's median neck."""
    necks = xy[:, NECK].copy()
    gap = np.isnan(necks).any(axis=1)
    if gap.any():
        present = necks[~gap]
        fallback = np.median(present, axis=0) if present.size else np.nanmean(xy.reshape(-1, 2), axis=0)
        necks[gap] = fallback
    return necks


def _hip_lines(xy: np.ndarray) -> np.ndarray:
    """(T, 2) the clip's hip line (left hip - right hip) per frame: measured where both hips
    are, else interpolated in time between the nearest frames that show both (held at the
    ends); NaN throughout when no frame shows both."""
    line = xy[:, L_HIP] - xy[:, R_HIP]
    both = ~np.isnan(line).any(axis=1)
    if both.any():
        t = np.arange(len(xy))
        line = np.column_stack([np.interp(t, t[both], line[both, i]) for i in range(2)])
    return line


def _rebuild(frame: np.ndarray, neck: np.ndarray, ratios: np.ndarray, s: float,
             torso: tuple[float, float] | None = None, hip_line: np.ndarray | None = None) -> np.ndarray:
    """(18, 2) one clip frame rebuilt bone by bone from the neck with the subject's ratios,
    relative to the neck; with `torso` (torso length ratio, hip width ratio) and both hips in
    the frame, the hips are its mid-hip vector and hip line scaled by those. A frame with one
    hip borrows the other from `hip_line` (the clip's hip line there, see _hip_lines): the
    borrowed hip places the one the frame has as both hips would, and anchors its own knee,
    then is left out (a missing point stays missing). Without a neck in the frame, every point
    is scaled by s instead."""
    if np.isnan(frame[NECK]).any():
        return (frame - neck) * s
    out = np.full_like(frame, np.nan)
    out[NECK] = 0.0
    shown = ~np.isnan(frame[[R_HIP, L_HIP]]).any(axis=1)
    borrowed = None
    if torso is not None and shown.sum() == 1 and hip_line is not None and not np.isnan(hip_line).any():
        frame = frame.copy()
        if shown[0]:
            borrowed, frame[L_HIP] = L_HIP, frame[R_HIP] + hip_line
        else:
            borrowed, frame[R_HIP] = R_HIP, frame[L_HIP] - hip_line
    hips = torso is not None and not np.isnan(frame[[R_HIP, L_HIP]]).any()
    if hips:
        mid = ((frame[R_HIP] + frame[L_HIP]) / 2.0 - frame[NECK]) * torso[0]  # the lean
        half = (frame[L_HIP] - frame[R_HIP]) / 2.0 * torso[1]                 # the hips' turn
        out[R_HIP], out[L_HIP] = mid - half, mid + half
    for k, (parent, child) in enumerate(LIMBS):  # parents come before their children
        if np.isnan(frame[child]).any() or (hips and child in (R_HIP, L_HIP)):
            continue
        anchor, ratio = parent, ratios[k]
        while np.isnan(frame[anchor]).any():  # hang from the nearest present ancestor
            anchor, ratio = PARENT[anchor], s
        out[child] = out[anchor] + (frame[child] - frame[anchor]) * ratio
    if borrowed is not None:
        out[borrowed] = np.nan
    return out


def _neck_track(xy, necks, body, subject, s, clip_height: int, height: int) -> np.ndarray:
    """(T, 2) where the rebuilt skeletons' necks go on the subject's canvas (`height` px high)."""
    x = subject[NECK, 0] + s * (necks[:, 0] - necks[:, 0].mean())
    clip_feet = np.nanmax(xy[:, ANKLES, 1], axis=1)               # lower ankle per frame, clip px
    feet = np.nanmax(body[:, ANKLES, 1], axis=1)                # lower ankle below the neck, out px
    if np.isnan(clip_feet).all() or np.isnan(feet).all():
        # No feet anywhere in the clip: the neck follows the clip's bounce around the subject's neck.
        y = subject[NECK, 1] + s * (necks[:, 1] - np.median(necks[:, 1]))
        return np.column_stack([x, y])
    clip_ground = np.nanmax(clip_feet)
    gap = clip_ground - clip_feet                               # height of the lower foot, clip px
    subject_feet = subject[ANKLES, 1]
    if not np.isnan(subject_feet).all():
        ground = np.nanmax(subject_feet)
        y = ground - s * gap - feet
        # Frames without feet keep the neck's height above the clip's ground, scaled.
        no_feet = np.isnan(y)
        y[no_feet] = ground - s * (clip_ground - necks[no_feet, 1])
        return np.column_stack([x, y])
    # A head-and-shoulders subject: the tallest standing frame keeps the photo's neck, and the
    # lift above the ground is damped into a bob. A frame without feet (a detector loses the
    # ankles in a blurred flight) lifts by its neck's rise above that standing neck, damped
    # by the same factor; a neck below it (a crouch) is kept, as the crouch of a frame with feet.
    grounded = (gap <= 0.01 * clip_height) & ~np.isnan(feet)
    standing = np.where(grounded, necks[:, 1], np.inf)
    t = int(np.argmin(standing)) if grounded.any() else int(np.nanargmin(np.where(np.isnan(feet), np.inf, gap)))
    ground = subject[NECK, 1] + feet[t]
    no_feet = np.isnan(gap) | np.isnan(feet)
    rise = np.where(no_feet, necks[t, 1] - necks[:, 1], 0.0)  # clip px, > 0: above the standing neck
    bob = _bob(s * np.concatenate([gap[~no_feet], np.maximum(rise[no_feet], 0.0)]), subject, height)
    y = ground - s * gap * bob - feet
    y[no_feet] = subject[NECK, 1] - s * np.where(rise > 0, rise * bob, rise)[no_feet]
    return np.column_stack([x, y])


def _bob(lift: np.ndarray, subject: np.ndarray, height: int) -> float:
    """The factor that damps a partial subject's lift above the ground (T,) so that its highest
    point is at most BOB of the figure's visible height (its top keypoint to the photo's bottom
    edge). One factor for the whole clip keeps the motion's timing and shape: a jump becomes a
    bob, the body's cut by the photo's edge barely moves and the view need not crop the photo."""
    top = np.nanmin(subject[:, 1])
    highest = np.nanmax(lift) if not np.isnan(lift).all() else 0.0
    bound = BOB * max(height - top, 1.0)
    return 1.0 if highest <= bound else float(bound / highest)


def _out_of_picture(out: np.ndarray, onto: Pose) -> np.ndarray:
    """(18,) keypoints the subject lacks that fall outside its canvas in most frames."""
    present = ~np.isnan(out[..., 0])
    outside = present & ~np.array([Pose.from_xy(xy, onto.width, onto.height).inside() for xy in out])
    mostly_outside = outside.sum(axis=0) * 2 > np.maximum(present.sum(axis=0), 1)
    return mostly_outside & ~onto.visible
