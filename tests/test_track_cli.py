"""``yoloxdet track`` with the official YOLOX-Nano on a short generated video, ``track-eval`` on its output,
and one-line errors for sources that cannot be opened."""

from __future__ import annotations

import json

import cv2
import pytest

from yoloxdet.cli import main
from yoloxdet.track.mot import read_mot
from yoloxdet.track.synthetic import load_sprites, make_sequence, write_generated_sequence

FRAMES = 12


@pytest.fixture(scope="module")
def generated(coco128, tmp_path_factory):
    """A 12-frame generated sequence: as an mp4 video and as a MOTChallenge folder with ground truth."""
    folder = tmp_path_factory.mktemp("generated")
    sprites = load_sprites(coco128, limit=10)
    sequence = make_sequence(
        sprites,
        cv2.imread(str(coco128 / "images" / "000000000025.jpg")),
        num_objects=4,
        num_frames=FRAMES,
        size=(240, 320),
        seed=2,
    )
    video = folder / "walk.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for frame in sequence.frames:
        writer.write(frame)
    writer.release()
    return video, write_generated_sequence(sequence, folder / "gt", name="walk")


def _track(nano_onnx, *args) -> int:
    return main(
        ["track", str(nano_onnx), "--model", "yolox-nano", "--size", "320", "--no-progress", *map(str, args)]
    )


def test_track_video_writes_video_mot_txt_and_json(nano_onnx, generated, tmp_path, capsys) -> None:
    video, gt_folder = generated
    output = tmp_path / "out"
    assert _track(nano_onnx, video, "-o", output) == 0
    capture = cv2.VideoCapture(str(output / "walk.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES and capture.get(cv2.CAP_PROP_FPS) == 10
    capture.release()
    report = json.loads((output / "walk.json").read_text())
    assert report["model"] == "yolox-nano" and len(report["frames"]) == FRAMES and report["fps"] == 10
    json_rows = [(f["frame"] + 1, t["track_id"]) for f in report["frames"] for t in f["tracks"]]
    rows = read_mot(output / "walk.txt")
    assert json_rows and list(zip(rows.frames.tolist(), rows.ids.tolist())) == json_rows
    assert "tracks in 12 frames" in capsys.readouterr().out

    # the same frames as an image folder (JPEG) are tracked too, and track-eval scores them against the truth
    folder_out = tmp_path / "folder"
    assert _track(nano_onnx, gt_folder / "img1", "-o", folder_out, "--no-save", "--fps", "10") == 0
    assert not (folder_out / "img1.mp4").exists()
    assert len(read_mot(folder_out / "img1.txt")) > 0
    (folder_out / "img1.txt").rename(folder_out / "walk.txt")
    assert main(["track-eval", str(folder_out), str(gt_folder), "--json", str(tmp_path / "scores.json")]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert 0 < scores["walk"]["HOTA"] <= 100 and "walk" in capsys.readouterr().out


def test_class_filter_keeps_only_those_classes(nano_onnx, generated, tmp_path) -> None:
    video, _ = generated
    assert _track(nano_onnx, video, "-o", tmp_path / "all", "--no-save", "--conf", "0.01") == 0
    classes = [
        t["class_name"]
        for f in json.loads((tmp_path / "all" / "walk.json").read_text())["frames"]
        for t in f["tracks"]
    ]
    assert classes, "the nano tracks something in the generated video"
    for wanted in (classes[0], "toothbrush"):
        assert (
            _track(nano_onnx, video, "-o", tmp_path, "--no-save", "--conf", "0.01", "--classes", wanted) == 0
        )
        kept = [
            t["class_name"]
            for f in json.loads((tmp_path / "walk.json").read_text())["frames"]
            for t in f["tracks"]
        ]
        assert set(kept) <= {wanted} and (classes[0] in kept) == (wanted == classes[0])
    assert main(["track", str(nano_onnx), str(video), "--model", "yolox-nano", "--classes", "unicorn"]) == 2


def test_tiled_tracking_with_one_tile_per_frame_is_untiled_tracking(nano_onnx, generated, tmp_path) -> None:
    """``--tile`` reaches the tracker's detector: a tile as large as the frame gives the untiled tracks, and
    smaller tiles other ones."""
    video, _ = generated
    assert _track(nano_onnx, video, "-o", tmp_path / "plain", "--no-save") == 0
    assert _track(nano_onnx, video, "-o", tmp_path / "whole", "--no-save", "--tile", "320") == 0
    assert _track(nano_onnx, video, "-o", tmp_path / "tiles", "--no-save", "--tile", "160") == 0
    plain, whole, tiles = ((tmp_path / name / "walk.txt").read_text() for name in ("plain", "whole", "tiles"))
    assert plain and whole == plain
    assert tiles and tiles != plain


@pytest.mark.parametrize("source", ["7", "rtsp://127.0.0.1:9/none"])
def test_a_source_that_cannot_be_opened_is_one_line(nano_onnx, source, capfd) -> None:
    assert main(["track", str(nano_onnx), source, "--model", "yolox-nano"]) == 2
    # (FFmpeg may add its own log line when it was already in use in this process; the CLI silences it first)
    [error] = [line for line in capfd.readouterr().err.splitlines() if not line.startswith("[")]
    assert error.startswith("yoloxdet track: error: ") and "cannot be opened" in error and source in error


def test_missing_source_is_named(nano_onnx, tmp_path, capsys) -> None:
    assert main(["track", str(nano_onnx), str(tmp_path / "nothing.mp4"), "--model", "yolox-nano"]) == 2
    assert "nothing.mp4: no such file" in capsys.readouterr().err
