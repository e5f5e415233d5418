"""Starting a real ``yoloxdet serve`` process on a free loopback port, for the serve tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m yoloxdet serve ARGS`` on 127.0.0.1; ``url`` once ``/readyz`` answers 200."""

    def __init__(self, *args: str, log: Path, ready_timeout: float = 180.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1",
            "OMP_WAIT_POLICY": "PASSIVE",
        }
        self.log = log
        self._log_handle = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "yoloxdet", "serve", *args, "--port", str(self.port)],
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.process.returncode}:\n{self.log.read_text()}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server was not ready within {ready_timeout} s:\n{self.log.read_text()}")

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._log_handle.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self._log_handle.close()


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def headless_chromium(profile: Path):
    """Debian's chromium through chromium-driver (selenium), headless, with a fresh profile and no background
    network (component updates, sync)."""
    from selenium import webdriver  # only the browser test and the screenshot need selenium

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(str(CHROMEDRIVER)), options=options)


def upload_on_page(browser, url: str, image: Path, api_key: str | None = None, timeout: float = 60) -> dict:
    """Open the page, upload ``image`` and wait until the answer's boxes are drawn; returns the answer
    JSON."""
    import json

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{url}/")
    if api_key:
        browser.find_element(By.ID, "api-key").send_keys(api_key)
    browser.find_element(By.ID, "file").send_keys(str(image))
    wait = WebDriverWait(browser, timeout)
    wait.until(lambda b: b.find_element(By.ID, "json").text.strip().startswith("{"))
    answer = json.loads(browser.find_element(By.ID, "json").text)
    canvas = browser.find_element(By.ID, "canvas")
    wait.until(lambda b: canvas.get_attribute("data-drawn") == str(len(answer.get("detections", []))))
    return answer
