"""MOTChallenge files and TrackEval metrics on sequences whose answer is known, and the generated sequence."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from yoloxdet.track.evaluate import COMBINED, evaluate_mot
from yoloxdet.track.mot import MotRows, read_mot, read_seqinfo, write_mot, write_sequence
from yoloxdet.track.synthetic import load_sprites, make_sequence


def _two_walkers(frames: int = 20) -> MotRows:
    """Two objects walking towards each other on separate rows (they never overlap)."""
    rows = []
    for f in range(1, frames + 1):
        rows.append((f, 1, 10 + 5 * f, 20, 40, 80, 1, 1, 1.0))
        rows.append((f, 2, 300 - 5 * f, 150, 40, 80, 1, 1, 1.0))
    return MotRows.from_rows(rows)


@pytest.fixture
def gt_sequence(tmp_path):
    gt = _two_walkers()
    folder = write_sequence(
        tmp_path / "gt" / "walk", np.zeros((20, 240, 320, 3), np.uint8), gt, frame_rate=25
    )
    return gt, folder


def test_mot_txt_round_trip(tmp_path) -> None:
    gt = _two_walkers(3)
    gt = MotRows(gt.frames, gt.ids, gt.tlwh + 0.25, gt.conf, gt.classes, np.full(len(gt), 0.5))
    write_mot(tmp_path / "gt.txt", gt, result=False)
    back = read_mot(tmp_path / "gt.txt")
    for name in ("frames", "ids", "tlwh", "conf", "classes", "visibility"):
        np.testing.assert_array_equal(getattr(back, name), getattr(gt, name), err_msg=name)
    write_mot(tmp_path / "pred.txt", gt)  # a result: conf,-1,-1,-1 tails
    assert (tmp_path / "pred.txt").read_text().splitlines()[0] == "1,1,15.25,20.25,40.25,80.25,1,-1,-1,-1"
    pred = read_mot(tmp_path / "pred.txt")
    np.testing.assert_array_equal(pred.tlwh, gt.tlwh)
    np.testing.assert_array_equal(pred.ids, gt.ids)


def test_a_malformed_line_is_named(tmp_path) -> None:
    (tmp_path / "bad.txt").write_text("1,1,0,0,10,10,1,1,1\n2,1,zero,0,10,10\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: not comma-separated numbers"):
        read_mot(tmp_path / "bad.txt")


def test_sequence_folder_has_frames_and_seqinfo(gt_sequence) -> None:
    _, folder = gt_sequence
    info = read_seqinfo(folder)
    assert (info["seqlength"], info["imwidth"], info["imheight"], info["framerate"]) == (
        "20",
        "320",
        "240",
        "25",
    )
    assert len(list((folder / "img1").glob("*.jpg"))) == 20


def test_perfect_tracker_scores_one_and_swapped_ids_lower_idf1(gt_sequence, tmp_path) -> None:
    gt, folder = gt_sequence
    write_mot(tmp_path / "perfect" / "walk.txt", gt)
    perfect = evaluate_mot(tmp_path / "perfect", folder)["walk"]
    assert (perfect.hota, perfect.mota, perfect.idf1) == (1.0, 1.0, 1.0)

    swapped_ids = np.where(gt.frames > 10, 3 - gt.ids, gt.ids)  # the two ids trade places halfway
    write_mot(
        tmp_path / "swapped" / "walk.txt",
        MotRows(gt.frames, swapped_ids, gt.tlwh, gt.conf, gt.classes, gt.visibility),
    )
    swapped = evaluate_mot(tmp_path / "swapped", folder.parent)
    assert swapped["walk"].idf1 == pytest.approx(0.5) and swapped["walk"].id_switches == 2
    # the detection is perfect, only the two switches cost
    assert swapped["walk"].mota == pytest.approx(1 - 2 / 40)
    assert swapped[COMBINED].idf1 == swapped["walk"].idf1 and swapped["walk"].hota < 1.0


def test_missing_tracker_result_is_named(gt_sequence, tmp_path) -> None:
    _, folder = gt_sequence
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no tracker result for sequence.*walk"):
        evaluate_mot(tmp_path / "empty", folder)


def test_generated_sequence_has_exact_ground_truth(coco128) -> None:
    sprites = load_sprites(coco128, limit=12)
    background = cv2.imread(str(coco128 / "images" / "000000000025.jpg"))
    sequence = make_sequence(sprites, background, num_objects=6, num_frames=40, seed=3)
    gt = sequence.gt
    assert sequence.frames.shape == (40, 480, 640, 3) and len(np.unique(gt.ids)) == 6
    assert (gt.visibility < 0.9).any() and (gt.visibility > 0.99).any()  # occlusions and clear views
    assert (gt.tlwh[:, :2] < 0).any() or (gt.tlwh[:, :2] + gt.tlwh[:, 2:] > [640, 480]).any()  # at the border
    # an object painted in front: the pixels inside its box differ from the blurred background
    row = int(np.argmax(gt.visibility))
    x, y, w, h = gt.tlwh[row].astype(int)
    frame = sequence.frames[gt.frames[row] - 1]
    assert frame[max(y, 0) : y + h, max(x, 0) : x + w].std() > 10
