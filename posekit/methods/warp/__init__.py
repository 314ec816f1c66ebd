"""The warp method: a classical puppet warp of the photo, CPU only, no weights.

    method.py   WarpOptions and WarpMethod (`--method warp`)
    segment.py  the person mask (GrabCut seeded from the skeleton)
    rig.py      body parts around the skeleton and the transform each part takes
"""
