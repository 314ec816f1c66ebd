"""A tiny, randomly initialised AnimateDiff motion adapter for offline tests.

It matches tests/tiny_sd.py's UNet (two blocks of 16 and 32 channels, one layer per block),
has v1-5-3's layout (temporal transformers in the down and up blocks, none in the middle, a
32-frame position table) and is saved with `save_pretrained`, so `--motion-adapter FOLDER`
loads it exactly as a real download. Its output projections get random weights, so that the
motion module really mixes frames (an untrained one that added nothing would couple nothing);
`coupled=False` zeroes them instead: every temporal transformer is then the identity, which is
the same UNet without a motion module.

    from tiny_animatediff import make_tiny_motion_adapter
    adapter = make_tiny_motion_adapter(tmp_path / "motion")
"""

from __future__ import annotations

from pathlib import Path

import torch


def make_tiny_motion_adapter(folder, coupled: bool = True, block_out_channels=(16, 32)) -> Path:
    """`block_out_channels` other than the tiny UNet's (16, 32): an adapter for another model
    (as an SDXL adapter is for SD 1.5)."""
    from diffusers import MotionAdapter

    torch.manual_seed(0)
    adapter = MotionAdapter(block_out_channels=tuple(block_out_channels), motion_layers_per_block=1,
                            motion_num_attention_heads=2, motion_norm_num_groups=8, motion_max_seq_length=32, use_motion_mid_block=False)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, module in adapter.named_modules():
            if name.endswith("proj_out"):
                if coupled:
                    module.weight.normal_(0.0, 0.5)
                else:
                    module.weight.zero_()
                    module.bias.zero_()
    adapter.save_pretrained(folder)
    return Path(folder)
