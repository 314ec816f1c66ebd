import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posekit.pose.formats import read_openpose_json, read_patn_annotations
from posekit.pose.detect.skeleton import parse_skeleton

NOSE = (225, 126)  # hand-labelled on the astronaut


def no_library_noise(stderr: str):
    assert "Traceback" not in stderr
    for line in stderr.splitlines():
        # only our own messages: errors, warnings, per-input lines and the summary
        assert line.startswith(("posekit: ", "/", "1 ", "2 ", "3 ", "4 ", "5 ", "6 ")) or not line.strip(), line


@pytest.fixture
def photos(tmp_path, astronaut):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(astronaut).save(folder / "astronaut.png")
    Image.fromarray(np.full((120, 200, 3), 200, np.uint8)).save(folder / "sub" / "wall.jpg")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")  # not an image suffix: not picked up from a folder
    return folder


def test_folder_with_bad_files_jsonl_and_outputs(run_posekit, photos, tmp_path):
    out = tmp_path / "out"
    text_as_image = tmp_path / "text.png"
    text_as_image.write_text("hello")
    r = run_posekit("extract-pose", photos, text_as_image, tmp_path / "missing.jpg", "--out", out, "--jsonl")
    assert r.returncode == 1, r.stderr
    no_library_noise(r.stderr)
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [rec["path"] for rec in records] == [
        str(photos / "astronaut.png"), str(photos / "corrupt.png"), str(photos / "empty.jpg"),
        str(photos / "sub" / "wall.jpg"), str(text_as_image), str(tmp_path / "missing.jpg")]
    astro, corrupt, empty, wall, text, missing = records
    assert (astro["width"], astro["height"]) == (512, 512) and len(astro["people"]) == 1
    assert len(astro["people"][0]["pose_keypoints_2d"]) == 54
    assert wall["people"] == [] and "error" not in wall
    for bad in (corrupt, empty, text, missing):
        assert bad["people"] == [] and bad["error"]
        errors = [line for line in r.stderr.splitlines() if line.startswith("posekit: error:") and bad["path"] in line]
        assert len(errors) == 1
    assert "posekit: warning:" in r.stderr and "wall.jpg: nobody found" in r.stderr

    assert sorted(p.name for p in out.iterdir()) == [  # and the hidden list of what it wrote (see below)
        ".posekit-written", "astronaut_keypoints.json", "astronaut_pose.png", "wall_keypoints.json", "wall_pose.png"]
    (pose,) = read_openpose_json(out / "astronaut_keypoints.json")
    assert pose.size == (512, 512) and np.hypot(*(pose["nose"] - NOSE)) < 12
    assert np.allclose(pose.keypoints, np.reshape(astro["people"][0]["pose_keypoints_2d"], (18, 3)), atol=1e-3)
    skeleton = np.asarray(Image.open(out / "astronaut_pose.png"))
    assert skeleton.shape == (512, 512, 3)
    (drawn,) = parse_skeleton(skeleton)
    assert np.abs(drawn.keypoints[pose.visible, :2] - pose.keypoints[pose.visible, :2]).max() < 2
    assert np.asarray(Image.open(out / "wall_pose.png")).shape == (120, 200, 3)
    assert read_openpose_json(out / "wall_keypoints.json") == []


def test_heatmaps_annotations_stdin_and_video(run_posekit, astronaut, astronaut_path, tmp_path):
    import imageio.v3 as iio

    clip = tmp_path / "clip.mp4"
    iio.imwrite(clip, np.stack([astronaut, astronaut[:, ::-1], astronaut]), fps=5)
    out, csv = tmp_path / "out", tmp_path / "ann.csv"
    r = run_posekit("extract-pose", "-", clip, "--out", out, "--heatmaps", "--heatmap-kind", "pixel",
                    "--annotations", csv, input=f"{astronaut_path}\n")
    assert r.returncode == 0, r.stderr
    no_library_noise(r.stderr)
    assert r.stdout == ""  # without --jsonl stdout stays empty
    maps = np.load(out / "astronaut.npy")
    assert maps.shape == (512, 512, 18) and maps.dtype == np.float32
    assert maps.sum() == len(read_openpose_json(out / "astronaut_keypoints.json")[0])  # one pixel per point
    for i in range(3):
        assert (out / f"clip_{i:05d}_keypoints.json").exists() and (out / f"clip_{i:05d}.npy").exists()
    rows = read_patn_annotations(csv, 512, 512)
    assert list(rows) == ["astronaut.png", "clip_00000.png", "clip_00001.png", "clip_00002.png"]
    x, y = rows["astronaut.png"]["nose"]
    assert np.hypot(x - NOSE[0], y - NOSE[1]) < 12
    # the mirrored frame: her right shoulder is still on our left, at the mirrored place
    mirrored = rows["clip_00001.png"]
    assert abs(mirrored["r_shoulder"][0] - (511 - rows["clip_00000.png"]["l_shoulder"][0])) < 30


def test_without_out_only_a_line_per_input(run_posekit, astronaut_path, tmp_path):
    r = run_posekit("extract-pose", astronaut_path, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and list(tmp_path.iterdir()) == []
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"{astronaut_path}: 1 person (") and line.endswith("/18 keypoints)")


def test_a_device_blazepose_ignores_is_said_once(run_posekit, astronaut_path, tmp_path):
    """BlazePose runs on the CPU: --device cpu (or cuda) with it does nothing, and says so once."""
    r = run_posekit("extract-pose", astronaut_path, "--device", "cpu", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert warnings == ["posekit: warning: --device has no effect here: --detector blazepose runs on the CPU"]


@pytest.mark.parametrize("args, message", [
    (["--detector", "yolo"], "--detector 'yolo'"),
    (["--heatmaps"], "--heatmaps needs --out"),
    (["--device", "tpu"], "--device 'tpu'"),
    (["--max-people", "0"], "--max-people"),
])
def test_usage_errors_exit_2(run_posekit, astronaut_path, args, message):
    r = run_posekit("extract-pose", astronaut_path, *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_bad_blazepose_bundle_is_one_line(run_posekit, astronaut_path, tmp_path):
    bundle = tmp_path / "pose.task"
    bundle.write_bytes(b"not a zip")
    r = run_posekit("extract-pose", astronaut_path, "--model", bundle)
    assert r.returncode == 1
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"posekit: error: --model {bundle}: cannot load it")


def test_empty_folder_is_a_usage_error(run_posekit, tmp_path):
    r = run_posekit("extract-pose", tmp_path)
    assert r.returncode == 2 and "no images or videos found" in r.stderr


def test_openpose_end_to_end_with_random_weights(run_posekit, astronaut, tmp_path):
    import torch

    from posekit.pose.detect.openpose import import_controlnet_aux_openpose

    _, model_lib, _ = import_controlnet_aux_openpose()
    torch.manual_seed(0)
    weights = tmp_path / "body_pose_model.pth"
    torch.save({k.split(".", 1)[1]: v for k, v in model_lib.bodypose_model().state_dict().items()}, weights)
    # a tall narrow crop: the network sees 184 px rows, so a narrow image keeps it quick on a CPU
    photo = tmp_path / "astronaut.png"
    Image.fromarray(np.ascontiguousarray(astronaut[:, 150:278])).save(photo)
    out = tmp_path / "out"
    r = run_posekit("extract-pose", photo, "--detector", "openpose", "--model", tmp_path,
                    "--device", "cpu", "--out", out, "--jsonl", "--max-people", "2")
    assert r.returncode == 0, r.stderr
    no_library_noise(r.stderr)
    (record,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert (record["width"], record["height"]) == (128, 512) and len(record["people"]) <= 2
    poses = read_openpose_json(out / "astronaut_keypoints.json")
    assert len(poses) == len(record["people"]) and all(p.size == (128, 512) for p in poses)
    assert np.asarray(Image.open(out / "astronaut_pose.png")).shape == (512, 128, 3)


def test_openpose_offline_hub_id_is_one_line(run_posekit, astronaut_path):
    r = run_posekit("extract-pose", astronaut_path, "--detector", "openpose", "--device", "cpu")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posekit: error: --model lllyasviel/Annotators")
    assert "body_pose_model.pth" in lines[0] and "--model DIR" in lines[0] and "hf download lllyasviel/Annotators body_pose_model.pth --local-dir DIR" in lines[0]


FIGURE = Path(__file__).resolve().parents[1] / "examples" / "figure.png"


def test_annotations_never_replace_an_input_or_a_file_posekit_did_not_write(run_posekit, tmp_path):
    import shutil

    photo = tmp_path / "p.png"
    shutil.copy(FIGURE, photo)
    photo_bytes = photo.read_bytes()
    r = run_posekit("extract-pose", photo, "--annotations", photo)
    assert r.returncode == 2 and photo.read_bytes() == photo_bytes
    # refused before any detection: one line, no line for the input
    assert r.stderr.splitlines() == [f"posekit: error: --annotations {photo}: is one of the inputs; "
                                     "pass another file name (e.g. annotations.csv)"]
    r = run_posekit("extract-pose", "-", "--annotations", photo, input=f"{photo}\n")  # an input from stdin too
    assert r.returncode == 2 and "is one of the inputs" in r.stderr and photo.read_bytes() == photo_bytes

    poses = tmp_path / "poses.jsonl"
    r = run_posekit("extract-pose", photo, "--jsonl")
    poses.write_text(r.stdout)
    notes = tmp_path / "notes.csv"
    notes.write_text("name,comment\np.png,mine\n")
    # a PATN dataset's own annotation file has posekit's header: it is the user's all the same
    dataset = tmp_path / "fasion-resize-annotation-train.csv"
    dataset.write_text("name:keypoints_y:keypoints_x\nfashionWOMENDresses1.jpg: [18, 52]: [85, 84]\n")
    for theirs in (poses, notes, FIGURE.parent / "figure_keypoints.json", dataset):
        before = theirs.read_bytes()
        r = run_posekit("extract-pose", photo, "--annotations", theirs)
        # exit 1, as animate --out and poses show --out refusing to replace a file (2 is for wrong flags)
        assert r.returncode == 1 and theirs.read_bytes() == before
        assert r.stderr.splitlines() == [f"posekit: error: --annotations {theirs}: exists and posekit did not write "
                                         "it (or it changed since); not replacing it (move it or pass another file "
                                         "name)"]
    ann = tmp_path / "ann.csv"  # an empty file is filled; the file posekit wrote is replaced by a re-run
    ann.write_text("")
    for _ in range(2):
        r = run_posekit("extract-pose", photo, "--annotations", ann)
        assert r.returncode == 0, r.stderr
        assert list(read_patn_annotations(ann, 384, 512)) == ["p.png"]
    with open(ann, "a") as f:  # edited by hand since: the user's now
        f.write("mine.png: [-1]: [-1]\n")
    r = run_posekit("extract-pose", photo, "--annotations", ann)
    assert r.returncode == 1 and "mine.png" in ann.read_text()


def test_same_names_from_two_folders_are_said_and_annotated_as_written(run_posekit, tmp_path):
    import shutil

    for name in ("a/x.png", "b/x.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy(FIGURE, tmp_path / name)
    Image.open(FIGURE).convert("RGB").save(tmp_path / "a" / "x.jpg")
    out = tmp_path / "out"
    r = run_posekit("extract-pose", "a/x.png", "b/x.png", "a/x.jpg", "--out", out, "--annotations", out / "ann.csv",
                    cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "posekit: warning: b/x.png: another input, a/x.png, has the same name; its outputs are named x_2",
        "posekit: warning: a/x.jpg: another input, a/x.png, has the same name; its outputs are named x_3"]
    for stem in ("x", "x_2", "x_3"):
        assert (out / f"{stem}_keypoints.json").is_file() and (out / f"{stem}_pose.png").is_file()
    # each row names its image as it is or, renamed, under its output stem with its own suffix
    assert list(read_patn_annotations(out / "ann.csv", 384, 512)) == ["x.png", "x_2.png", "x_3.jpg"]
    r = run_posekit("extract-pose", "a/x.png", "b/x.png", cwd=tmp_path)  # nothing named, nothing to say
    assert r.returncode == 0 and "warning" not in r.stderr


def test_help_names_values_not_python_types(run_posekit):
    r = run_posekit("extract-pose", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for leak in ("<list[", "<int", "<str>", "<path>", "<bool>"):
        assert leak not in text, leak
    for shown in ("--out DIR", "--detector NAME", "--model ID|PATH", "--max-people N", "--device DEVICE",
                  "--heatmap-kind KIND", "--annotations FILE.csv"):
        assert shown in text, shown
    assert "INPUT is any mix of" in text and "NUL-separated" in text
    assert "per frame of a video or animated image" in text  # --jsonl: not one object per input
    # --out: the exception to "never replaces a file posekit did not write", and when it holds
    assert "an unlisted <stem>_pose.png beside <stem>_keypoints.json counts as its own when they are a PNG and " \
           "an OpenPose file" in text


def test_a_hand_made_pose_and_keypoints_pair_is_never_replaced(run_posekit, tmp_path):
    """<stem>_pose.png + <stem>_keypoints.json under --out that are not a PNG and an OpenPose file
    (text files, say) are someone's: kept, and that input fails; a real pair is replaced."""
    import shutil

    shutil.copy(FIGURE, tmp_path / "figure.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "figure_pose.png").write_text("hi\n")
    (out / "figure_keypoints.json").write_text("hi\n")
    r = run_posekit("extract-pose", tmp_path / "figure.png", "--out", out)
    assert r.returncode == 1
    assert f"posekit: error: {out}/figure_keypoints.json: exists and posekit did not write it; not replacing it" in r.stderr
    assert (out / "figure_pose.png").read_text() == "hi\n" and (out / "figure_keypoints.json").read_text() == "hi\n"
    # a pair such as animate or poses show writes (no .posekit-written here): posekit's, replaced
    shutil.copy(FIGURE, out / "figure_pose.png")
    (out / "figure_keypoints.json").write_text('{"people": []}\n')
    r = run_posekit("extract-pose", tmp_path / "figure.png", "--out", out)
    assert r.returncode == 0, r.stderr
    assert len(read_openpose_json(out / "figure_keypoints.json")) == 1


def test_jsonl_of_a_folder_follows_natural_order(run_posekit, tmp_path):
    """frames 1, 2, 10 come out 1, 2, 10 (as --poses DIR reads them), not as text sorts them."""
    import shutil

    for n in (10, 2, 1):
        shutil.copy(FIGURE, tmp_path / f"frame_{n}.png")
    r = run_posekit("extract-pose", tmp_path, "--jsonl")
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["path"] for line in r.stdout.splitlines()] == [
        str(tmp_path / f"frame_{n}.png") for n in (1, 2, 10)]


def test_prepare_dataset_says_unreadable_photos_as_errors(tmp_path, capsys):
    """They count toward exit status 1 (prepare-dataset returns their number): "error", not "warning"."""
    from posekit.methods.patn.prepare import prepare
    from posekit.pose.motions import motion

    class Idle:
        def detect(self, images):
            return [[motion("idle", 1, im.shape[1], im.shape[0])[0]] for im in images]

        def close(self):
            pass

    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg"):
        Image.new("RGB", (64, 128), (90, 90, 90)).save(raw / name)
    (raw / "0007_c1s1_000001_01.jpg").write_bytes(b"not a jpeg")
    capsys.readouterr()
    assert prepare(raw, "market1501", tmp_path / "market", test_fraction=0.5, detector=Idle()) == 1
    err = capsys.readouterr().err
    assert f"posekit: error: {raw / '0007_c1s1_000001_01.jpg'}: " in err and "warning" not in err


def test_train_gan_help_gives_the_synthetic_defaults(run_posekit):
    from posekit.methods.patn.data import PRESETS

    r = run_posekit("train-gan", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    syn = PRESETS["synthetic"]
    assert f"{syn.width}x{syn.height} synthetic" in text and "synthetic any)" not in text
    assert f"{syn.lambda_perceptual:g} synthetic" in text
    for p, name in ((PRESETS["deepfashion"], "DeepFashion"), (PRESETS["market1501"], "Market")):
        assert f"{p.width}x{p.height} {name}" in text and f"{p.lambda_perceptual:g} {name}" in text


def test_rerun_repairs_its_own_half_written_outputs_not_hand_made_ones(run_posekit, tmp_path):
    """A run killed between an input's keypoints and its skeleton leaves a keypoints JSON alone:
    posekit listed it in --out/.posekit-written, so the re-run replaces it and finishes the
    pair. A hand-made <stem>_keypoints.json, or posekit's edited since, stays."""
    import shutil

    out = tmp_path / "out"
    for name in ("a.png", "b.png", "c.png"):
        shutil.copy(FIGURE, tmp_path / name)
    r = run_posekit("extract-pose", tmp_path / "a.png", tmp_path / "b.png", "--out", out)
    assert r.returncode == 0, r.stderr
    (out / "a_pose.png").unlink()  # the half pair a kill leaves (the JSON is written first)
    edited = (out / "b_keypoints.json").read_text().replace("[", "[ ", 1)  # corrected by hand
    (out / "b_keypoints.json").write_text(edited)
    (out / "c_keypoints.json").write_text('{"people": []}\n')  # hand-made
    r = run_posekit("extract-pose", tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png", "--out", out)
    assert r.returncode == 1
    assert [line for line in r.stderr.splitlines() if "error" in line] == [
        f"posekit: error: {out}/b_keypoints.json: changed since posekit wrote it; not replacing it "
        "(move it or pass another --out folder)",
        f"posekit: error: {out}/c_keypoints.json: exists and posekit did not write it; not replacing it "
        "(move it or pass another --out folder)"]
    assert (out / "a_pose.png").is_file() and len(read_openpose_json(out / "a_keypoints.json")) == 1
    assert (out / "b_keypoints.json").read_text() == edited and (out / "b_pose.png").is_file()
    assert (out / "c_keypoints.json").read_text() == '{"people": []}\n' and not (out / "c_pose.png").exists()
    r = run_posekit("extract-pose", tmp_path / "a.png", "--out", out)  # a finished pair: replaced as before
    assert r.returncode == 0, r.stderr


def test_heatmaps_never_replace_a_npy_posekit_did_not_write(run_posekit, tmp_path):
    """The pair a posekit run left (<stem>_keypoints.json + <stem>_pose.png) vouches for those two
    files only: a <stem>.npy made by hand beside them stays, and that input fails."""
    import shutil

    out = tmp_path / "out"
    shutil.copy(FIGURE, tmp_path / "fig.png")
    assert run_posekit("extract-pose", tmp_path / "fig.png", "--out", out).returncode == 0
    np.save(out / "fig.npy", np.arange(5))
    mine = (out / "fig.npy").read_bytes()
    r = run_posekit("extract-pose", tmp_path / "fig.png", "--out", out, "--heatmaps")
    assert r.returncode == 1
    assert f"posekit: error: {out}/fig.npy: exists and posekit did not write it; not replacing it" in r.stderr
    assert (out / "fig.npy").read_bytes() == mine
    (out / "fig.npy").unlink()  # gone: the re-run writes the maps, and then replaces its own
    for _ in range(2):
        r = run_posekit("extract-pose", tmp_path / "fig.png", "--out", out, "--heatmaps")
        assert r.returncode == 0, r.stderr
        assert np.load(out / "fig.npy").shape[2] == 18
