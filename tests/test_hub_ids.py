"""The hub ids, subfolders and weight names of every generative part, through the hub's own code.

A Hugging Face cache (HF_HUB_CACHE) is laid out as a download leaves it (models--ORG--NAME/
refs/main + snapshots/<commit>/...), holding the tests' tiny random models under the real repo
ids as diffusers' docs spell them. The installed command then runs offline on its defaults (no
--model, --controlnet or --motion-adapter), so each part is found by hub id, subfolder and
weight name exactly as after `hf download`: a wrong id, subfolder or file name fails here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIGURE_POSE = REPO / "examples" / "figure_keypoints.json"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

# the ids as diffusers' docs and the model cards name them
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
OPENPOSE = "lllyasviel/control_v11p_sd15_openpose"
IP_ADAPTER = "h94/IP-Adapter"  # models/ip-adapter-plus_sd15.safetensors + models/image_encoder/
LCM_LORA = "latent-consistency/lcm-lora-sdv1-5"  # pytorch_lora_weights.safetensors
MOTION = "guoyww/animatediff-motion-adapter-v1-5-3"
ANIMATELCM = "wangfuyun/AnimateLCM"  # the motion adapter + AnimateLCM_sd15_t2v_lora.safetensors
WAN = "Wan-AI/Wan2.2-Animate-14B-Diffusers"


def snapshot(cache: Path, repo: str) -> Path:
    """An empty snapshot folder of `repo` in the cache, the one refs/main points to."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    folder = root / "snapshots" / COMMIT
    folder.mkdir(parents=True)
    return folder


@pytest.fixture(scope="module")
def hub(tmp_path_factory, tiny_sd):
    """HF_HUB_CACHE with tiny SD 1.5, its OpenPose ControlNet, IP-Adapter Plus, LCM-LoRA, the
    AnimateDiff v1-5-3 and AnimateLCM motion adapters and Wan2.2-Animate under their hub ids."""
    from tiny_animatediff import make_tiny_motion_adapter
    from tiny_sd import make_tiny_ip_adapter, make_tiny_lcm_lora
    from tiny_wan import make_tiny_wan

    work, cache = tmp_path_factory.mktemp("parts"), tmp_path_factory.mktemp("hf") / "hub"
    sd, controlnet = tiny_sd
    shutil.copytree(sd, snapshot(cache, SD15), dirs_exist_ok=True)
    shutil.copytree(controlnet, snapshot(cache, OPENPOSE), dirs_exist_ok=True)
    shutil.copytree(make_tiny_ip_adapter(work / "ip" / "models").parent, snapshot(cache, IP_ADAPTER) / "models")
    lcm = make_tiny_lcm_lora(work / "lcm")
    shutil.copytree(lcm, snapshot(cache, LCM_LORA), dirs_exist_ok=True)
    motion = make_tiny_motion_adapter(work / "motion")
    shutil.copytree(motion, snapshot(cache, MOTION), dirs_exist_ok=True)
    animatelcm = snapshot(cache, ANIMATELCM)
    shutil.copytree(motion, animatelcm, dirs_exist_ok=True)
    shutil.copy(lcm / "pytorch_lora_weights.safetensors", animatelcm / "AnimateLCM_sd15_t2v_lora.safetensors")
    shutil.copytree(make_tiny_wan(work / "wan"), snapshot(cache, WAN), dirs_exist_ok=True)
    return cache


def test_the_defaults_are_the_documented_ids():
    from posekit.methods.animatediff import method as animatediff
    from posekit.methods.diffusion import models
    from posekit.methods.wan import method as wan

    assert (models.DEFAULT_MODEL, models.DEFAULT_CONTROLNET) == (SD15, OPENPOSE)
    assert (models.IP_ADAPTER, models.IP_ADAPTER_SUBFOLDER, models.IP_ADAPTER_WEIGHT) == (
        IP_ADAPTER, "models", "ip-adapter-plus_sd15.safetensors")
    assert (models.LCM_LORA, models.LCM_LORA_WEIGHT) == (LCM_LORA, "pytorch_lora_weights.safetensors")
    assert (animatediff.DEFAULT_MOTION_ADAPTER, animatediff.ANIMATELCM, animatediff.ANIMATELCM_LORA) == (
        MOTION, ANIMATELCM, "AnimateLCM_sd15_t2v_lora.safetensors")
    assert wan.DEFAULT_WAN_MODEL == WAN


@pytest.mark.parametrize("method, flags", [
    ("diffusion", ["--ip-adapter", IP_ADAPTER, "--lcm", "--steps", "2"]),  # SD 1.5, ControlNet, IP-Adapter, LCM-LoRA
    ("animatediff", ["--ip-adapter", IP_ADAPTER, "--steps", "1"]),  # + the v1-5-3 motion adapter
    ("animatediff", ["--lcm", "--steps", "1"]),  # AnimateLCM: its adapter and its LoRA
    ("wan", ["--steps", "1", "--character", "photo"]),  # Wan2.2-Animate
])
def test_each_method_loads_its_parts_by_hub_id_offline(hub, run_posekit, tmp_path, method, flags):
    """`posekit animate` on the defaults, offline, with the parts in the hub cache only: exit 0,
    the frames made, and nothing on stderr but posekit's own lines."""
    from test_quiet_terminal import foreign_lines

    out = tmp_path / "out"
    photo = tmp_path / "figure.png"
    from PIL import Image

    Image.open(REPO / "examples" / "figure.png").resize((48, 64)).save(photo)
    proc = run_posekit("animate", photo, "--source-pose", FIGURE_POSE, "--poses", "walk", "--frames", "3",
                       "--method", method, *flags, "--device", "cpu", "--no-evaluate", "--json", "--out", out,
                       env={"HF_HUB_CACHE": str(hub), "HF_HOME": str(hub.parent), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["frames"] == 3
    assert len(list((out / "frames").glob("*.png"))) == 3
    stage = f"{method}: "  # the method's own progress lines ("wan: walk, 3 frames...")
    assert [line for line in foreign_lines(proc.stderr) if not line.startswith(stage)] == []
