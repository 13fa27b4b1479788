"""The web editor (app.py): its edits give the CLI scripts' pixels (through gradio_client against a
running app), bad uploads leave the session usable, the command line answers with one line, and a
headless Chromium uploads a face, moves a slider and sees the edit (marked ``browser``)."""
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

import app  # noqa: E402
from editing import Editor, fit_boundary  # noqa: E402
from editing.boundaries import boundary_path, default_boundary_dir  # noqa: E402

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny random-weight 32-px SynthFaces checkpoint, a Mouth_Slightly_Open boundary stored where
    both the app and attr_manipulation.py look (fitted on random embeddings: no label faces), and
    three SynthFaces faces at the model size."""
    from data_loader import synthfaces as sf
    from data_loader.synthfaces.dataset import render_batch
    from tests.helpers import TINY_CHECKPOINT_CONFIG, save_tiny_checkpoint
    from utils.image_io import save_image

    root = tmp_path_factory.mktemp("webapp")
    ckpt = save_tiny_checkpoint(root / "tiny.pth", config={"data_set": TINY_CHECKPOINT_CONFIG["data_set"]})
    ed = Editor.from_checkpoint(ckpt, device="cpu")
    z = torch.randn(60, 4, ed.comp_dim, generator=torch.Generator().manual_seed(0))
    fit_boundary(z, z[:, 3, 0] > 0, "Mouth_Slightly_Open", {"type": "test"}, ed.fingerprint()).save(
        boundary_path(default_boundary_dir(ckpt), "Mouth_Slightly_Open"))
    faces = []
    for i, img in enumerate(render_batch([sf.sample_factors(7, i) for i in range(3)], 32)):
        faces.append(root / f"face{i}.png")
        save_image(img, faces[-1])
    (root / "not_an_image.png").write_text("hello")
    return {"root": root, "ckpt": str(ckpt), "faces": [str(f) for f in faces]}


@pytest.fixture(scope="module")
def server(work):
    """The app on a free local port, started in this process and closed afterwards."""
    args = app.build_parser().parse_args(["--resume", work["ckpt"], "--device", "cpu"])
    demo, handlers = app.build_app(app.make_session(args))
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield {"url": f"http://127.0.0.1:{port}/", "handlers": handlers}
    finally:
        demo.close()


def values(handlers, **strengths):
    """Slider/selector values in page order: ``name=(strength, spec)`` or ``name=strength``."""
    out = []
    for c in handlers.controls:
        s = strengths.get(c.name, 0)
        s, spec = s if isinstance(s, tuple) else (s, c.components)
        out += [s, spec]
    return out


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_app_edits_match_the_cli_scripts(work, server, tmp_path):
    import attr_manipulation
    import component_transfer
    import reconstruction

    from gradio_client import Client, handle_file

    client = Client(server["url"], verbose=False)
    h = server["handlers"]
    face, ref = work["faces"][0], work["faces"][1]
    cli = ["--resume", work["ckpt"], "--device", "cpu"]

    *_, download, msg = client.predict(handle_file(face), "auto", api_name="/load_face")
    assert "used as is" in msg  # a 32x32 image on a 32-px model: taken as aligned
    assert reconstruction.main(cli + ["--data_path", face, "--out", str(tmp_path / "rec")]) == 0
    assert np.array_equal(pixels(download), pixels(tmp_path / "rec" / "face0.png"))

    for strength, spec in ((4.0, "mouth"), (-3.0, "nose")):
        _, _, download, msg = client.predict(False, [], *values(h, mouth_open=(strength, spec)), api_name="/edit")
        assert f"Mouth_Slightly_Open {strength:+g} ({spec})" in msg
        out = tmp_path / f"attr{strength:g}"
        assert attr_manipulation.main(cli + ["--data_path", face, "--attr", "mouth_open", "--strength", str(strength),
                                             "--component", spec, "--out", str(out)]) == 0
        assert np.array_equal(pixels(download), pixels(out / "face0.png")), (strength, spec)
        assert not np.array_equal(pixels(download), pixels(tmp_path / "rec" / "face0.png"))

    _, msg = client.predict(handle_file(ref), "auto", api_name="/load_reference")
    assert "Reference face1.png" in msg
    _, _, download, msg = client.predict(False, ["eyes", "mouth"], *values(h), api_name="/edit")
    assert "eyes, mouth from face1.png" in msg
    assert component_transfer.main(cli + ["--target", face, "--reference", ref, "--component", "eyes,mouth",
                                          "--out", str(tmp_path / "ct")]) == 0
    assert np.array_equal(pixels(download), pixels(tmp_path / "ct" / "face0.png"))


def test_bad_uploads_say_so_and_the_session_goes_on(work, server):
    from gradio_client import Client, handle_file

    client = Client(server["url"], verbose=False)
    h = server["handlers"]
    *_, msg = client.predict(handle_file(str(work["root"] / "not_an_image.png")), "auto", api_name="/load_face")
    assert msg.startswith("**Could not use this upload:** not_an_image.png: cannot read image"), msg
    assert "/tmp" not in msg  # the upload's name, not its temporary path
    session = h.session
    session.max_pixels, old = 500, session.max_pixels
    try:
        face, _, msg = h.load(work["faces"][0], "auto")
        assert face is None and "photo too large" in msg and "scale it down" in msg
    finally:
        session.max_pixels = old
    *_, download, msg = client.predict(handle_file(work["faces"][2]), "as is", api_name="/load_face")
    assert msg.startswith("Loaded face2.png") and Path(download).is_file()
    _, _, download, msg = client.predict(False, [], *values(h, mouth_open=2.0), api_name="/edit")
    assert "Mouth_Slightly_Open +2" in msg


def test_photos_are_aligned_and_pasted_back_like_the_cli(work, server, tmp_path):
    """The astronaut photo: aligned (auto), edited, pasted back: the pixels of attr_manipulation.py
    --align; a photo without a face is a message."""
    pytest.importorskip("dlib")
    skdata = pytest.importorskip("skimage.data")
    import attr_manipulation
    from gradio_client import Client, handle_file

    photo = work["root"] / "astronaut.png"
    Image.fromarray(skdata.astronaut()).save(photo)
    client = Client(server["url"], verbose=False)
    *_, msg = client.predict(handle_file(str(photo)), "auto", api_name="/load_face")
    assert "astronaut.png: aligned" in msg, msg
    _, _, download, msg = client.predict(False, [], *values(server["handlers"], mouth_open=4.0), api_name="/edit")
    assert pixels(download).shape == (512, 512, 3)
    assert attr_manipulation.main(["--resume", work["ckpt"], "--device", "cpu", "--data_path", str(photo), "--align",
                                   "--attr", "mouth_open", "--out", str(tmp_path / "attr")]) == 0
    assert np.array_equal(pixels(download), pixels(tmp_path / "attr" / "astronaut.png"))

    rng = np.random.default_rng(1)
    wall = work["root"] / "wall.png"
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(wall)
    face, _, msg = server["handlers"].load(str(wall), "auto")
    assert face is None and "wall.png: no face found" in msg


def test_command_line_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert app.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no checkpoint under saved/models" in err[0] and "train.py" in err[0]
    assert app.main(["--resume", "x.pth", "--port", "70000"]) == 2
    assert capsys.readouterr().err.strip() == "error: --port must be between 1 and 65535, got 70000"
    assert app.main(["--resume", "missing.pth"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    (tmp_path / "saved/models/a/r").mkdir(parents=True)
    old, new = tmp_path / "saved/models/a/r/latest.pth", tmp_path / "saved/models/a/r/best.pth"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    os.utime(old, (1, 1))
    assert app.newest_checkpoint(Path("saved/models")) == Path("saved/models/a/r/best.pth")


# ------------------------------------------------------------------------------- real browser
def browser_screenshot(url: str, face: str, out: Path, slider: str = "mouth_open", steps: int = 8,
                       size=(1280, 1500)) -> tuple[str, str]:
    """Open the editor in headless Chromium, upload ``face``, move ``slider`` right by ``steps``
    keyboard steps, save a screenshot to ``out``; returns the edited image's source before and after."""
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="iafaces_chromium_")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"))
        driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(face)

        def status(d):
            return d.find_element(By.ID, "status").text

        wait.until(lambda d: "Showing: reconstruction" in status(d))
        edited_src = lambda d: (d.find_elements(By.CSS_SELECTOR, "#edited img") or [None])[0]  # noqa: E731
        wait.until(lambda d: edited_src(d) is not None)
        before = edited_src(driver).get_attribute("src")
        rng = driver.find_element(By.CSS_SELECTOR, f"#slider-{slider} input[type=range]")
        rng.click()  # the middle: 0
        for _ in range(steps):
            rng.send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda d: "Mouth_Slightly_Open +" in status(d) and edited_src(d).get_attribute("src") != before)
        time.sleep(1.0)  # the last of the queued moves, then the picture
        after = edited_src(driver).get_attribute("src")
        driver.execute_script("window.scrollTo(0, 0)")
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
        return before, after
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium chromium-driver)")
def test_browser_upload_slider_edit(work, server, tmp_path):
    pytest.importorskip("selenium")
    shot = tmp_path / "webapp.png"
    before, after = browser_screenshot(server["url"], work["faces"][0], shot)
    assert before and after and before != after
    assert Image.open(shot).size[0] > 600
    if os.environ.get("IAFACES_ARTIFACTS"):
        dest = Path(os.environ["IAFACES_ARTIFACTS"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, dest / "webapp.png")
