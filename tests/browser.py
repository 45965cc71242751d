"""A real headless Chromium (Debian's chromium + chromium-driver, installed by scripts/test), driven by selenium."""
from __future__ import annotations

import shutil

import numpy as np
import pytest


def headless_chromium():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):  # (as the Godot tests: scripts/test installs it when it can, as root)
        pytest.skip("these tests open pages in a real browser: apt-get install chromium chromium-driver "
                    "(scripts/test does, as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(driver), options=opts)


def decode_png(data: bytes) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "not a PNG"
    return img


def looks_like_a_plot(img: np.ndarray) -> None:
    """Not blank: a fair share of drawn (non-white) pixels, and many colours (axes, text, lines, markers)."""
    drawn = (img < 245).any(axis=2).mean()
    colours = len(np.unique(img.reshape(-1, 3), axis=0))
    assert 0.01 < drawn < 0.9, f"drawn fraction {drawn:.3f}"
    assert colours > 20, f"{colours} colours"
