"""The warp method: a classical puppet warp of the photo, CPU only, no weights.

    method.py   WarpOptions and WarpMethod (`--method warp`)
    segment.py  the person mask (BlazePose's learned mask picked by the skeleton; GrabCut fallback)
    rig.py      body parts around the skeleton and the transform each part takes
    camera.py   one camera per clip: the whole clip's figure in the frame, at one scale
    plate.py    the background plate: the photo with the person removed and filled
"""
