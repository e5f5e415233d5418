"""``yoloxdet serve`` under load on loopback: dynamic batching vs a batch-1 server of the same build, latency
at concurrency 1/4/16, a soak with good/corrupt/oversized uploads, and SIGTERM under load. Writes the
``serve`` section of docs/benchmarks.md; ``--stacks`` instead compares our FastAPI + uvicorn server with
LitServe running the same detector and batching, and writes the ``serve-stacks`` section of docs/serving.md.

The model is the official YOLOX-Nano, exported once to ONNX with a dynamic batch (``yoloxdet export``, cached
in runs/bench_serve/) and run by onnxruntime. First, the server's own work without HTTP at batch 1, 4 and 8
(the most batching can add on this CPU). The load client runs on the same machine, so its CPU competes with
the servers': it is one asyncio loop with a raw keep-alive socket per simulated user (a fraction of a
millisecond of CPU per request, reported), not threads of httpx clients (~6.5 ms per request). Every 200
answer is checked against a direct ``Detector`` call on the same image.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_serve.py  # ~6 min: ceiling, load, 120 s soak, SIGTERM
    python benchmarks/bench_serve.py --soak-s 300
    python benchmarks/bench_serve.py --stacks         # FastAPI + uvicorn vs LitServe, ~2 min
    python benchmarks/bench_serve.py --screenshot     # docs/images/serve_page.png (headless chromium)
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import psutil
import torch

from yoloxdet.data.transforms import letterbox, to_chw_float
from yoloxdet.inference.api import Detector
from yoloxdet.inference.backends import OnnxBackend
from yoloxdet.serve.app import load_detector
from yoloxdet.serve.config import ServeConfig
from yoloxdet.serve.upload import decode_upload

try:
    import litserve  # only --stacks needs it
except ImportError:
    litserve = None

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _report import write_section
from _serve_process import free_port, headless_chromium, upload_on_page

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("YOLOXDET_SHARED", REPO.parent / "shared"))
NANO = SHARED / "weights" / "yolox_nano.onnx"
COCO = SHARED / "data" / "coco128" / "images"
CACHE = REPO / "runs" / "bench_serve"
MAX_BYTES = 2_000_000
MAX_PIXELS = 20_000_000


def exported_nano() -> Path:
    """The official Nano as a yoloxdet ONNX export with a dynamic batch (made once)."""
    target = CACHE / "yolox_nano_dynamic.onnx"
    if not target.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "yoloxdet",
                "export",
                str(NANO),
                "--model",
                "yolox-nano",
                "--static-size",
                "-o",
                str(target),
            ],
            check=True,
        )
    return target


def start(command: list[str], url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[:4]} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"not ready: {log.read_text()[-2000:]}")


def serve_ours(model: Path, max_batch: int, port: int, max_wait_ms: float = 0.0) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "yoloxdet",
        "serve",
        str(model),
        "--port",
        str(port),
        "--max-batch",
        str(max_batch),
        "--max-wait-ms",
        str(max_wait_ms),
        "--max-bytes",
        str(MAX_BYTES),
        "--max-pixels",
        str(MAX_PIXELS),
    ]
    return start(command, f"http://127.0.0.1:{port}/readyz", CACHE / f"serve-b{max_batch}.log")


class Expected:
    """Direct Detector answers per image, and the check of a served answer against them."""

    def __init__(self, detector: Detector, images: dict[str, bytes]) -> None:
        self.by_name = {name: detector.predict(COCO / name)[0].to_dict()["detections"] for name in images}

    def matches(self, name: str, detections: list[dict]) -> bool:
        want = self.by_name[name]
        if [d["class_id"] for d in detections] != [d["class_id"] for d in want]:
            return False
        return all(
            np.allclose(a["box_xyxy"], b["box_xyxy"], atol=0.05) and abs(a["score"] - b["score"]) < 1e-3
            for a, b in zip(detections, want)
        )


def _request_bytes(url: str, name: str, image: bytes, multipart: bool) -> bytes:
    """One complete HTTP/1.1 POST of ``image`` to ``url`` (keep-alive), built once per image."""
    parts = httpx.URL(url)
    if multipart:
        boundary = "bench-serve-boundary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n".encode()
            + image
            + f"\r\n--{boundary}--\r\n".encode()
        )
        content_type = f"multipart/form-data; boundary={boundary}"
    else:
        body, content_type = image, "image/jpeg"
    head = (
        f"POST {parts.raw_path.decode()} HTTP/1.1\r\nHost: {parts.host}:{parts.port}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """Send one prepared request on an open connection; returns (status, body)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    return int(lines[0].split()[1]), await reader.readexactly(length)


def load(
    url: str,
    images: dict[str, bytes],
    expected: Expected,
    *,
    clients: int,
    per_client: int,
    multipart: bool = False,
) -> dict:
    """``clients`` simulated users, each on its own keep-alive connection, send ``per_client`` requests back
    to back; returns req/s, latencies, the answer checks and the client's own CPU time per request.

    The client is one asyncio loop writing prepared requests on raw sockets, so it takes little of the CPU the
    servers share with it; the answers are parsed and checked after the timed run."""
    names = sorted(images)
    requests = {name: _request_bytes(url, name, images[name], multipart) for name in names}
    parts = httpx.URL(url)

    async def user(index: int) -> list[tuple[str, float, int, bytes]]:
        reader, writer = await asyncio.open_connection(parts.host, parts.port)
        answers = []
        try:
            for step in range(per_client):
                name = names[(index * per_client + step) % len(names)]
                started = time.perf_counter()
                status, body = await _post(reader, writer, requests[name])
                answers.append((name, time.perf_counter() - started, status, body))
        finally:
            writer.close()
        return answers

    async def users() -> list[list[tuple[str, float, int, bytes]]]:
        return await asyncio.gather(*(user(i) for i in range(clients)))

    cpu, started = time.process_time(), time.perf_counter()
    answers = [answer for per_user in asyncio.run(users()) for answer in per_user]
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    latencies = sorted(latency for _, latency, _, _ in answers)
    failed = sum(status != 200 for _, _, status, _ in answers)
    wrong = sum(
        status == 200 and not expected.matches(name, json.loads(body)["detections"])
        for name, _, status, body in answers
    )
    return {
        "rps": len(latencies) / seconds,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
        "n": len(latencies),
        "wrong": wrong,
        "failed": failed,
        "client_cpu_ms": cpu / len(latencies) * 1000,
    }


def median_of(turns: list[dict], key: str) -> float:
    return statistics.median(t[key] for t in turns)


def read_images(count: int) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(COCO.glob("*.jpg"))[:count]}


def throughput_and_latency(
    urls: dict[str, str], servers: dict[str, subprocess.Popen], images, expected, args
) -> tuple[list[str], dict]:
    """Each server in turn at 1, 4 and 16 clients; also the server's CPU time per request (user + system)."""
    rows, results = [], {}
    for clients, per_client in ((1, args.requests // 4), (4, args.requests // 8), (16, args.requests // 16)):
        turns: dict[str, list[dict]] = {name: [] for name in urls}
        for _ in range(args.turns):  # interleaved: each turn runs every server once
            for name, url in urls.items():
                server = psutil.Process(servers[name].pid)
                cpu = sum(server.cpu_times()[:2])
                run = load(url, images, expected, clients=clients, per_client=per_client)
                run["server_cpu_ms"] = (sum(server.cpu_times()[:2]) - cpu) / run["n"] * 1000
                turns[name].append(run)
        for name, runs in turns.items():
            results[(name, clients)] = runs
            rows.append(
                f"| {name} | {clients} | {median_of(runs, 'rps'):.1f} | {median_of(runs, 'p50'):.0f} | "
                f"{median_of(runs, 'p99'):.0f} | {median_of(runs, 'server_cpu_ms'):.1f} | "
                f"{median_of(runs, 'client_cpu_ms'):.2f} | {sum(r['n'] for r in runs)} | "
                f"{sum(r['wrong'] for r in runs)} | {sum(r['failed'] for r in runs)} |"
            )
    return rows, results


CEILING_BATCHES = (1, 4, 8)


def inference_ceiling(model: Path, images: dict[str, bytes], rounds: int) -> list[str]:
    """CPU time per image of the server's own work without HTTP, at batch 1, 4 and 8: the forward pass alone
    (onnxruntime set up as the server sets it up) and ``Detector.predict_batch`` (letterbox + forward +
    postprocess). When the cores are saturated, throughput is the cores over the CPU time per request, so
    what batching saves here is the most it can add to throughput. Also the forward pass with onnxruntime's
    default spinning threads, which the server turns off. Table rows, medians over interleaved rounds."""
    detector = load_detector(ServeConfig(weights=str(model), max_batch=max(CEILING_BATCHES)))
    spinning = OnnxBackend(model, busy_wait=True)
    arrays = [decode_upload(images[name], max_pixels=MAX_PIXELS) for name in sorted(images)]
    canvases = [to_chw_float(letterbox(array, detector.input_size)[0]) for array in arrays]
    timings: dict[tuple[str, int], list[tuple[float, float]]] = {}

    def measure(key: tuple[str, int], work, images_per_call: int, calls: int) -> None:
        work()  # first call of this shape
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(calls):
            work()
        per_image = calls * images_per_call / 1000
        timings.setdefault(key, []).append(
            ((time.process_time() - cpu) / per_image, (time.perf_counter() - wall) / per_image)
        )

    for _ in range(rounds):
        for size in CEILING_BATCHES:
            stacked = torch.from_numpy(np.stack([canvases[i % len(canvases)] for i in range(size)]))
            batch = [arrays[i % len(arrays)] for i in range(size)]
            calls = max(2, 16 // size)
            measure(("forward", size), functools.partial(detector.backend, stacked), size, calls)
            measure(("predict_batch", size), functools.partial(detector.predict_batch, batch), size, calls)
            measure(("forward, threads spinning", size), functools.partial(spinning, stacked), size, calls)
    rows = []
    for stage in ("forward", "predict_batch", "forward, threads spinning"):
        cpu = {size: statistics.median(c for c, _ in timings[(stage, size)]) for size in CEILING_BATCHES}
        wall = {size: statistics.median(w for _, w in timings[(stage, size)]) for size in CEILING_BATCHES}
        rows.append(
            f"| {stage} | "
            + " | ".join(f"{cpu[size]:.1f} / {wall[size]:.1f}" for size in CEILING_BATCHES)
            + f" | {cpu[1] / cpu[max(CEILING_BATCHES)]:.2f}× |"
        )
    return rows


def soak(url: str, process: subprocess.Popen, images, expected, seconds: float, clients: int = 8) -> dict:
    """Good, corrupt, oversized-body and decompression-bomb uploads in a fixed 7:1:1:1 rotation."""
    good = sorted(images)
    png = cv2.imencode(".png", cv2.imdecode(np.frombuffer(images[good[0]], np.uint8), cv2.IMREAD_COLOR))[1]
    corrupt = png[:200].tobytes() + bytes(20_000)  # a real PNG header, then zeros instead of pixel data
    bomb = cv2.imencode(".png", np.zeros((6000, 6000), np.uint8))[1]  # 36 M pixels in ~40 kB
    oversized = os.urandom(MAX_BYTES + 1)
    kinds = ["good"] * 7 + ["corrupt", "oversized", "bomb"]
    statuses: Counter = Counter()
    wrong = 0
    lock = threading.Lock()
    rss_start = psutil.Process(process.pid).memory_info().rss
    deadline = time.monotonic() + seconds

    def user(index: int) -> None:
        nonlocal wrong
        step = index
        with httpx.Client(timeout=120) as client:
            while time.monotonic() < deadline:
                kind = kinds[step % len(kinds)]
                name = good[step % len(good)]
                body = {
                    "good": images[name],
                    "corrupt": corrupt,
                    "oversized": oversized,
                    "bomb": bomb.tobytes(),
                }[kind]
                try:
                    response = client.post(url, content=body)
                except (
                    httpx.TransportError
                ):  # a 413 sent before the whole body was read closes the connection
                    client.close()
                    client = httpx.Client(timeout=120)
                    with lock:
                        statuses[(kind, "closed")] += 1
                    step += 1
                    continue
                with lock:
                    statuses[(kind, response.status_code)] += 1
                    if kind == "good" and (
                        response.status_code != 200
                        or not expected.matches(name, response.json()["detections"])
                    ):
                        wrong += 1
                step += 1

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(user, range(clients)))
    rss_end = psutil.Process(process.pid).memory_info().rss
    return {
        "statuses": statuses,
        "wrong": wrong,
        "rss_start": rss_start,
        "rss_end": rss_end,
        "alive": process.poll() is None,
    }


def sigterm_under_load(url: str, process: subprocess.Popen, images, expected, clients: int = 16) -> dict:
    """Clients keep sending; SIGTERM after 3 s. Every request either gets a correct 200 or is refused."""
    outcomes: Counter = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    names = sorted(images)

    def user(index: int) -> None:
        step = index
        while not stop.is_set():
            name = names[step % len(names)]
            try:
                with httpx.Client(timeout=120) as client:
                    response = client.post(url, content=images[name])
                if response.status_code == 503 and response.json().get("kind") == "shutting_down":
                    kind = "shutting down (503)"
                    stop.wait(0.05)
                elif response.status_code == 200 and expected.matches(name, response.json()["detections"]):
                    kind = "answered"
                else:
                    kind = f"bad {response.status_code}"
            except httpx.ConnectError:
                kind = "refused (connect)"
                stop.wait(0.05)
            except httpx.TransportError as exc:
                kind = f"dropped ({type(exc).__name__})"
            with lock:
                outcomes[kind] += 1
            step += 1

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(user, i) for i in range(clients)]
        try:
            time.sleep(3)
            sent = time.perf_counter()
            process.send_signal(signal.SIGTERM)
            code = process.wait(600)  # on a crowded machine the queued batches take a while to finish
            exit_s = time.perf_counter() - sent
            time.sleep(1)
        finally:
            stop.set()
        for future in futures:
            future.result()
    return {"outcomes": outcomes, "exit": code, "exit_s": exit_s}


def run_main(args: argparse.Namespace) -> None:
    load_start = os.getloadavg()[0]
    model = exported_nano()
    images = read_images(args.images)
    expected = Expected(Detector.from_checkpoint(model), images)
    ceiling = inference_ceiling(model, images, args.turns)
    dynamic_name = f"dynamic (max-batch 8, wait {args.max_wait_ms:g} ms)"
    ports = {dynamic_name: free_port(), "batch-1": free_port()}
    servers = {
        name: serve_ours(model, 8 if name == dynamic_name else 1, port, args.max_wait_ms)
        for name, port in ports.items()
    }
    urls = {name: f"http://127.0.0.1:{port}/v1/detect" for name, port in ports.items()}
    try:
        rows, results = throughput_and_latency(urls, servers, images, expected, args)
        dynamic, single = (median_of(results[(name, 16)], "rps") for name in urls)
        soak_result = soak(urls[dynamic_name], servers[dynamic_name], images, expected, args.soak_s)
        batches = httpx.get(urls[dynamic_name].replace("/v1/detect", "/metrics")).text
        term = sigterm_under_load(urls[dynamic_name], servers[dynamic_name], images, expected)
    finally:
        for process in servers.values():
            if process.poll() is None:
                process.kill()
    mean_batch = _mean_batch(batches)
    load_end = os.getloadavg()[0]
    statuses = ", ".join(
        f"{kind} → {status}: {n}" for (kind, status), n in sorted(soak_result["statuses"].items(), key=str)
    )
    outcomes = ", ".join(f"{kind}: {n}" for kind, n in sorted(term["outcomes"].items()))
    command = (
        f"OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_serve.py --requests {args.requests} --turns "
        f"{args.turns} --soak-s {args.soak_s:g} --max-wait-ms {args.max_wait_ms:g}"
    )
    markdown = f"""## Serving (`yoloxdet serve`, loopback)

Written by `{command}` ({platform.machine()}, {os.cpu_count()} CPUs,
{time.strftime("%Y-%m-%d")}; 1-minute load average of the machine {load_start:.1f} at the start,
{load_end:.1f} at the end). Model: the official YOLOX-Nano exported to ONNX with a dynamic batch, onnxruntime
(intra-op threads sleep between operators: `busy_wait=False`), 416×416; {len(images)} coco128 JPEGs sent as
raw bodies. Both servers run side by side and take turns ({args.turns} interleaved turns per concurrency;
medians). The client runs on the same cores: one asyncio loop, one keep-alive connection per simulated user,
prepared requests on raw sockets; its CPU time per request is in the table (the server's too: user + system
time of its process). Every 200 answer was checked against a direct `Detector` call on the same image
("wrong").

**What batching can give on this CPU.** CPU / wall ms per image of the server's own work without HTTP, at
batch 1, 4 and 8 (medians of {args.turns} rounds): the forward pass as the server runs it, `predict_batch`
(letterbox + forward + postprocess), and the forward pass with onnxruntime's default spinning threads. The
last column is CPU per image at batch 1 over batch 8: the most a batched server can gain in throughput once
the cores are saturated:

| stage | batch 1 | batch 4 | batch 8 | b1 / b8 CPU |
|---|---|---|---|---|
{chr(10).join(ceiling)}

| server | clients | req/s | p50 ms | p99 ms | server CPU ms/req | client CPU ms/req | requests | wrong | \
failed |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Throughput at 16 clients, dynamic batching / batch-1: **{dynamic / single:.2f}×** (goal ≥ 1.5×). Mean batch
size of the dynamic server over the whole run: {mean_batch:.2f}.

**Soak** ({args.soak_s:.0f} s, 8 clients, a 7:1:1:1 rotation of good JPEGs, a PNG with zeros for pixel data, a
body over `--max-bytes` and a 6000×6000 PNG decompression bomb of ~40 kB): {statuses}. Wrong or failed good
answers: {soak_result["wrong"]}; server alive at the end: {soak_result["alive"]}. Server RSS
{soak_result["rss_start"] / 2**20:.0f} MiB at the start, {soak_result["rss_end"] / 2**20:.0f} MiB at the end.

**SIGTERM under load** (16 clients, one new connection per request, signal after 3 s): {outcomes}; exit status
{term["exit"]} after {term["exit_s"]:.1f} s (a drain of 1 s included: `--drain-s`). "answered" are correct
200s (including those in flight at the signal); "shutting down" are 503s answered during the drain; "refused"
found the socket closed; nothing else is allowed.
"""
    print(markdown)
    write_section("serve", markdown)


def _mean_batch(metrics: str) -> float:
    values = {}
    for line in metrics.splitlines():
        if line.startswith(("yoloxdet_batch_size_sum", "yoloxdet_batch_size_count")):
            name, value = line.split()
            values[name] = float(value)
    return values["yoloxdet_batch_size_sum"] / max(values["yoloxdet_batch_size_count"], 1)


LITSERVE_CHILD = "--litserve-child"


if litserve is not None:  # module level: LitServe pickles the API class into its inference worker

    class LitDetectAPI(litserve.LitAPI):
        """LitServe serving the same Detector with the same batching and decode as ours."""

        def setup(self, device):
            self.detector = Detector.from_checkpoint(os.environ["BENCH_SERVE_MODEL"], batch_size=8)

        def decode_request(self, request):
            return decode_upload(request["image"].file.read(), max_pixels=MAX_PIXELS)

        def batch(self, images):
            return list(images)  # images of different sizes: letterboxed inside Detector.predict_batch

        def unbatch(self, detections):
            return detections

        def predict(self, images):
            return self.detector.predict_batch(images)

        def encode_response(self, dets):
            return {"model": self.detector.info.model_name, **dets.to_dict()}


def litserve_child(model: str, port: int) -> None:
    """LitServe with batches of up to 8 requests and a 5 ms wait, as our dynamic server."""
    os.environ["BENCH_SERVE_MODEL"] = model
    api = LitDetectAPI(max_batch_size=8, batch_timeout=0.005, api_path="/v1/detect")
    server = litserve.LitServer(api, accelerator="cpu", workers_per_device=1)
    server.run(port=port, host="127.0.0.1", generate_client_file=False)


def run_stacks(args: argparse.Namespace) -> None:
    model = exported_nano()
    images = read_images(args.images)
    expected = Expected(Detector.from_checkpoint(model), images)
    ours_port, lit_port = free_port(), free_port()
    servers = {
        "FastAPI + uvicorn (ours)": serve_ours(model, 8, ours_port, max_wait_ms=5),  # LitServe's timeout
        "LitServe": start(
            [sys.executable, __file__, LITSERVE_CHILD, str(model), str(lit_port)],
            f"http://127.0.0.1:{lit_port}/health",
            CACHE / "litserve.log",
        ),
    }
    urls = {
        "FastAPI + uvicorn (ours)": f"http://127.0.0.1:{ours_port}/v1/detect",
        "LitServe": f"http://127.0.0.1:{lit_port}/v1/detect",
    }
    try:
        time.sleep(2)
        turns: dict[str, list[dict]] = {name: [] for name in urls}
        for _ in range(args.turns):
            for name, url in urls.items():
                turns[name].append(
                    load(url, images, expected, clients=16, per_client=args.requests // 16, multipart=True)
                )
    finally:
        for process in servers.values():
            process.kill()
    rows = [
        f"| {name} | {median_of(r, 'rps'):.1f} | {median_of(r, 'p50'):.0f} | {median_of(r, 'p99'):.0f} | "
        f"{sum(x['wrong'] for x in r)} | {sum(x['failed'] for x in r)} |"
        for name, r in turns.items()
    ]
    ours, lit = (median_of(turns[name], "rps") for name in urls)
    command = f"python benchmarks/bench_serve.py --stacks --requests {args.requests} --turns {args.turns}"
    markdown = f"""Written by `{command}`
({os.cpu_count()} CPUs, shared with other helpers' jobs while it ran; {time.strftime("%Y-%m-%d")}). Both serve
the official YOLOX-Nano ONNX export (onnxruntime) through the same `Detector.predict_batch`, \
batches of up to 8 with a 5
ms wait, 16 threaded clients sending multipart uploads, {args.turns} interleaved turns, medians; every answer
checked against a direct `Detector` call.

| stack | req/s | p50 ms | p99 ms | wrong | failed |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Ours / LitServe throughput: **{ours / lit:.2f}×**.
"""
    print(markdown)
    write_section("serve-stacks", markdown, path=REPO / "docs" / "serving.md")


def run_screenshot(args: argparse.Namespace) -> None:
    """The page with a coco128 image detected, for the README (docs/images/serve_page.png)."""
    port = free_port()
    server = serve_ours(exported_nano(), 8, port)
    browser = headless_chromium(CACHE / "chromium-profile")
    try:
        answer = upload_on_page(browser, f"http://127.0.0.1:{port}", COCO / "000000000036.jpg")
        browser.save_screenshot(str(REPO / "docs" / "images" / "serve_page.png"))
        print(f"{len(answer['detections'])} boxes drawn -> docs/images/serve_page.png")
    finally:
        browser.quit()
        server.kill()


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == LITSERVE_CHILD:
        litserve_child(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", action="store_true", help="compare FastAPI + uvicorn with LitServe")
    parser.add_argument("--screenshot", action="store_true", help="only the page screenshot for the README")
    parser.add_argument(
        "--requests", type=int, default=128, help="requests per turn at 16 clients (default 128)"
    )
    parser.add_argument("--turns", type=int, default=3, help="interleaved turns per server (default 3)")
    parser.add_argument("--images", type=int, default=16, help="coco128 images to cycle through (default 16)")
    parser.add_argument("--soak-s", type=float, default=120.0, help="soak duration in seconds (default 120)")
    parser.add_argument(
        "--max-wait-ms", type=float, default=0.0, help="--max-wait-ms of the dynamic server (default 0)"
    )
    args = parser.parse_args()
    if args.screenshot:
        run_screenshot(args)
    else:
        run_stacks(args) if args.stacks else run_main(args)


if __name__ == "__main__":
    main()
