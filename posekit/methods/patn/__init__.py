"""PATN, the pose-attentional transfer network (Zhu et al., CVPR 2019).

    model.py      generator, discriminators, the authors' checkpoint layout
    data.py       presets, the official DeepFashion / Market-1501 layouts, synthetic pairs
    synthetic.py  the built-in clothed-mannequin generator
    prepare.py    raw photos -> the official layout (`posekit prepare-dataset`)
    train.py      the accelerate training loop (`posekit train-gan`)
    method.py     PatnOptions, PatnMethod (`--method gan`); load_patn
    evaluate.py   the papers' evaluation table (`posekit evaluate-gan`)
"""
