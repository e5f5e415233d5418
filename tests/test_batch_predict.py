"""``torchrun -m yoloxdet predict``: two real processes (gloo, CPU) shard the files; a run killed midway and
started again finishes with every file done exactly once, and the detections equal a single-process
Detector's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from yoloxdet.inference.api import Detector
from yoloxdet.serve.batch_predict import result_file

SRC = Path(__file__).resolve().parents[1] / "src"
SIZE = 256
COUNT = 16


def _torchrun(nproc: int, source: Path, output: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    nano = Path(os.environ.get("YOLOXDET_SHARED", SRC.parents[1] / "shared")) / "weights" / "yolox_nano.onnx"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        "yoloxdet",
        "predict",
        str(nano),
        "--model",
        "yolox-nano",
        "--size",
        str(SIZE),
        "--batch",
        "1",
        "--no-progress",
        "-o",
        str(output),
        str(source),
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_two_ranks_killed_and_resumed_finish_every_file_once_with_single_process_detections(
    coco128, nano_onnx, tmp_path
):
    source = tmp_path / "images"
    source.mkdir()
    names = sorted(p.name for p in (coco128 / "images").glob("*.jpg"))[:COUNT]
    for name in names:
        shutil.copy(coco128 / "images" / name, source / name)
    (source / "broken.jpg").write_bytes(b"not a jpeg")
    files = sorted(source.glob("*.jpg"))
    output = tmp_path / "out"

    first = _torchrun(2, source, output)
    while first.poll() is None and sum(result_file(output, f).exists() for f in files) < 2:
        time.sleep(0.005)
    assert first.poll() is None, (
        f"the first run ended before the kill: {first.stdout.read().decode()[-2000:]}"
    )
    ranks = psutil.Process(first.pid).children(
        recursive=True
    )  # the elastic agent gives them their own groups
    for process in [psutil.Process(first.pid), *ranks]:
        process.send_signal(signal.SIGKILL)  # mid-job, with no chance to finish a file
    first.wait()
    psutil.wait_procs(ranks, timeout=30)
    done_first = {f: result_file(output, f).read_bytes() for f in files if result_file(output, f).exists()}
    assert 0 < len(done_first) < COUNT, f"the kill should land midway, {len(done_first)} of {COUNT} were done"

    second = _torchrun(2, source, output)
    log = second.communicate(timeout=300)[0].decode()
    assert second.returncode != 0, "broken.jpg fails, so the job reports a failure"
    for path, content in done_first.items():  # finished before the kill: not done again
        assert result_file(output, path).read_bytes() == content, path
    manifest = json.loads((output / "manifest.json").read_text())["files"]
    assert sorted(manifest) == sorted(str(f) for f in files)
    assert manifest[str(source / "broken.jpg")]["status"] == "error", log
    assert "broken.jpg" in manifest[str(source / "broken.jpg")]["error"]
    good = [f for f in files if f.name != "broken.jpg"]
    assert all(manifest[str(f)]["status"] == "done" for f in good)
    assert {manifest[str(f)]["rank"] for f in good} == {0, 1}
    assert len({manifest[str(f)]["run"] for f in good}) == 2  # two launches, each file from one of them

    report = json.loads((output / "detections.json").read_text())
    assert [Path(i["image"]).name for i in report["images"]] == [f.name for f in good]
    detector = Detector.from_checkpoint(nano_onnx, model_name="yolox-nano", input_size=(SIZE, SIZE))
    for entry, expected in zip(report["images"], detector.predict(good)):
        want = expected.to_dict()
        assert [d["class_id"] for d in entry["detections"]] == [d["class_id"] for d in want["detections"]]
        for a, b in zip(entry["detections"], want["detections"]):
            np.testing.assert_allclose(a["box_xyxy"], b["box_xyxy"], atol=0.05)
            assert a["score"] == pytest.approx(b["score"], abs=1e-3)
        assert (output / "images").is_dir() and Path(entry["annotated"]).exists()
