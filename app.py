"""A local web editor for IA-FaceS faces (Gradio): upload a photo, move sliders, compare, download.

    python app.py --resume CKPT [--host 127.0.0.1] [--port 7860] [--device auto] [--share]

Without ``--resume`` the newest checkpoint under ``saved/models/`` is used. The page aligns an
uploaded photo like the model's training data (or takes an already aligned face as it is), encodes
it once and decodes it on every slider move: one slider per attribute preset and per attribute of the
label source (with a component selector), component transfer from a second face, a before/after
view and the full-size PNG (written when asked for). Boundaries load or fit through
``editing.get_boundary``, as in ``attr_manipulation.py``. ``--benchmark N`` measures the time of N
slider moves instead of serving (without ``--resume``: of the default 64-px model and of a
released-format 256-px one, both with random weights).

Memory and disk stay bounded: a session's state holds the aligned crop and its encoding; an
aligned photo (needed to paste the edit back) stays on disk in the face's own folder under the
app's temporary folder (``iafaces_app_*``, which also holds Gradio's cache); a session ends after
``--idle_minutes`` without activity or when its tab is closed, and its files go with it; the
temporary folder is removed on exit, on Ctrl+C / SIGTERM / SIGHUP and after a failed start.
"""
from __future__ import annotations

import utils.omp  # noqa: F401  (first: OpenMP reads its wait policy when torch loads)

import atexit
import errno
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine unless --share

from PIL import Image  # noqa: E402

from editing import BoundaryError, Editor, default_label_source  # noqa: E402
from editing.align import DETECTORS, RECIPES  # noqa: E402
from editing.editor import PRECISIONS  # noqa: E402
from editing.session import COMPONENT_CHOICES, EditSession, Face, PhotoGoneError, display_copy  # noqa: E402
from utils.cli import ArgumentParser, main_guard  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.image_io import tensor_to_uint8  # noqa: E402

CHECKPOINT_ROOT = Path("saved/models")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TEMP_PREFIX = "iafaces_app_"
DEFAULT_IDLE_MINUTES = 30.0
IDLE_MINUTES_RANGE = (1.0, 1440.0)
FILE_MB_RANGE = (0.1, 10000.0)  # --max_file_mb: from 100 kB (a small photo) to 10 GB
TRAIN_HINT = ("train one with `python train.py -c configs/synthfaces.json` (about 45 minutes on 2 CPU cores) or "
              "give --resume CKPT")


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="Local web editor for IA-FaceS faces (Gradio).")
    p.add_argument("--resume", default=None, metavar="CKPT",
                   help="checkpoint (default: the newest .pth under saved/models/)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also make a public gradio.live link (warned about)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per network call (default: 1 for models up to 128 px, whose small layers "
                        "gain nothing from more on a busy CPU; torch's default for larger ones)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto (default: bf16 + channels-last on a CPU that computes bf16 natively, else fp32), "
                        "fp32 (exact) or bf16")
    p.add_argument("--max_file_mb", type=float, default=50,
                   help=f"largest upload in MB (default 50; from {FILE_MB_RANGE[0]:g} to {FILE_MB_RANGE[1]:g})")
    p.add_argument("--idle_minutes", type=float, default=DEFAULT_IDLE_MINUTES,
                   help="a session (its faces, stored photo and results) ends after this many minutes without "
                        f"activity (default {DEFAULT_IDLE_MINUTES:g}; from {IDLE_MINUTES_RANGE[0]:g} to "
                        f"{IDLE_MINUTES_RANGE[1]:g}); closing the tab ends it at once")
    p.add_argument("--align_recipe", choices=RECIPES, default=None,
                   help="alignment recipe (default: the checkpoint's data set picks it)")
    p.add_argument("--detector", choices=DETECTORS, default="hog", help="dlib face detector (default hog)")
    b = p.add_argument_group("boundaries (as attr_manipulation.py)")
    b.add_argument("--boundary_dir", default=None,
                   help="where boundaries are stored (default: <ckpt folder>/boundaries/<ckpt stem>/)")
    b.add_argument("--label_file", default=None, help="CelebAMask-HQ-attribute-anno.txt (needs --label_img_dir)")
    b.add_argument("--label_img_dir", default=None, help="folder with the images the label file names")
    b.add_argument("--num_label_faces", type=int, default=None,
                   help="labelled faces used to fit (SynthFaces default 2000; CelebA-HQ default all found)")
    p.add_argument("--benchmark", type=int, default=0, metavar="N",
                   help="time N slider moves on a SynthFaces face (no server) and exit; without --resume: the default 64-px "
                        "model and a released-format 256-px one, random weights")
    return p


def newest_checkpoint(root: Path = CHECKPOINT_ROOT) -> Path | None:
    """The most recently written ``.pth`` under ``root`` (None when there is none)."""
    found = [p for p in root.rglob("*.pth") if p.is_file()] if root.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def make_session(args, editor: Editor | None = None) -> EditSession:
    """The page's session for ``args.resume`` (or for ``editor``, already built)."""
    if args.num_label_faces is not None and args.num_label_faces < 1:
        raise UserError("--num_label_faces must be positive")
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads must be at least 1")
    if editor is None:
        editor = Editor.from_checkpoint(args.resume, args.device, batch_size=8, precision=args.precision)
    threads = args.threads or (1 if editor.size <= 128 and editor.device.type == "cpu" else None)
    explicit = args.label_file is not None or args.num_label_faces is not None
    return EditSession(editor, args.boundary_dir,
                       lambda: default_label_source(editor, args.label_file, args.label_img_dir, args.num_label_faces),
                       explicit_source=explicit, recipe=args.align_recipe, detector=args.detector,
                       threads=threads)


# ------------------------------------------------------------------------------------- handlers
class Handlers:
    """The page's functions: plain Python on top of an :class:`EditSession` (gradio only for
    progress and updates), kept apart from the layout so that tests can call them.

    Every loaded face gets its own folder under ``root/faces`` (its stored photo, the screen copy
    of the photo, the full-size PNG when asked for); :meth:`release` deletes it. Faces not used for
    ``idle_s`` seconds are released by :meth:`sweep` (the page's states expire after the same time
    and release theirs); :meth:`end_session` releases a closed tab's faces; :meth:`close` removes
    ``root``."""

    def __init__(self, session: EditSession, root: Path | str | None = None, idle_s: float = DEFAULT_IDLE_MINUTES * 60):
        self.session = session
        self.controls = session.controls
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
        self.faces_dir = self.root / "faces"
        self.faces_dir.mkdir(parents=True, exist_ok=True)
        self.idle_s = float(idle_s)
        self._lock = threading.Lock()
        self._faces: dict[str, tuple[Face, float, str | None]] = {}  # key -> (face, last use, session)

    # ---- faces and their files
    def _track(self, face: Face, session_id: str | None) -> None:
        with self._lock:
            self._faces[face.key] = (face, time.monotonic(), session_id)

    def touch(self, face: Face | None) -> None:
        """Mark ``face`` as used now (it expires ``idle_s`` after its last use)."""
        if face is None:
            return
        with self._lock:
            if face.key in self._faces:
                f, _, sid = self._faces[face.key]
                self._faces[face.key] = (f, time.monotonic(), sid)

    def release(self, face: Face | None) -> None:
        """Delete ``face``'s folder and forget it (also the page states' delete callback)."""
        if not isinstance(face, Face):
            return
        with self._lock:
            self._faces.pop(face.key, None)
        self.session.forget(face)
        face.release()

    def end_session(self, session_id: str | None) -> None:
        """Release every face of a browser session (its tab was closed)."""
        with self._lock:
            gone = [f for f, _, sid in self._faces.values() if sid is not None and sid == session_id]
        for face in gone:
            self.release(face)

    def sweep(self) -> int:
        """Release faces unused for ``idle_s`` seconds; returns how many."""
        now = time.monotonic()
        with self._lock:
            old = [f for f, used, _ in self._faces.values() if now - used > self.idle_s]
        for face in old:
            self.release(face)
        return len(old)

    def close(self) -> None:
        """Release every face and remove ``root``."""
        with self._lock:
            faces = [f for f, _, _ in self._faces.values()]
        for face in faces:
            self.release(face)
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- the page's functions
    def load(self, path, mode: str, session_id: str | None = None, keep_photo: bool = True):
        """(face or None, reconstruction for the screen, message). ``keep_photo`` False: a
        reference face (only its encoding is used)."""
        if not path:
            return None, None, "Upload a photo to start."
        self.sweep()
        name = Path(str(path)).name
        folder = self.faces_dir / uuid.uuid4().hex
        face = None
        try:
            face = self.session.load(path, mode or "auto", name=name, folder=folder, keep_photo=keep_photo)
            face.folder = folder
            self._track(face, session_id)
            if face.aligned is not None and face.has_photo:
                shown = display_copy(self.session.to_photo(face, face.reconstruction))  # keeps the photo decoded:
                Image.fromarray(display_copy(self.session.photo(face))).save(folder / "before.png", compress_level=1)
            else:  # used as is, or a reference face (its photo is not kept): the model's crop
                shown = display_copy(tensor_to_uint8(face.reconstruction))
        except UserError as e:
            self._discard(face, folder)
            return None, None, f"**Could not use this upload:** {_one_line(e)}. Upload another photo."
        except Exception as e:  # a bug must not end the session: say so and go on
            traceback.print_exc()
            self._discard(face, folder)
            return None, None, f"**Could not use this upload** (internal error: {e.__class__.__name__}). Try another photo."
        finally:
            free_unused_memory()  # the decoded photo's temporaries
        how = ("aligned (face detected, the edit is pasted back into the photo)" if face.aligned is not None else
               f"used as is (resized to {self.session.editor.size} px; choose 'align' if it is an ordinary photo)")
        return face, shown, f"Loaded {name}: {how}."

    def _discard(self, face: Face | None, folder: Path) -> None:
        if face is not None:
            self.release(face)
        shutil.rmtree(folder, ignore_errors=True)

    def changes(self, values):
        """Slider and selector values (interleaved) -> [(attribute, strength, spec)]."""
        return [(c.attribute, float(values[2 * i] or 0), values[2 * i + 1] or c.components)
                for i, c in enumerate(self.controls)]

    def _result(self, face: Face, ref: Face | None, keep_detail: bool, transfer, values, say=lambda m: None):
        """(full-size result, changes): the edit pasted back (or the crop)."""
        changes = self.changes(values)
        for attr, s, _ in changes:
            if s and not self.session.is_stored(attr):
                say(f"fitting the {attr} boundary (first time only; it is stored for later runs)")
        edited = self.session.edit(face, changes, ref, list(transfer or []), log=say)
        return self.session.to_photo(face, edited, keep_detail), changes

    def edit(self, face: Face | None, ref: Face | None, keep_detail: bool, transfer, values, progress=None):
        """(edited for the screen, (before, after) pair, message). The full-size PNG is written
        by :meth:`download` only."""
        if face is None:
            return None, None, self.no_face()
        say = (lambda m: progress(None, desc=m)) if progress is not None else (lambda m: None)
        self.touch(face)
        self.touch(ref)
        t0 = time.perf_counter()
        try:
            full, changes = self._result(face, ref, keep_detail, transfer, values, say)
            shown = display_copy(full)
            if face.aligned is None:
                before = display_copy(tensor_to_uint8(face.crop))
            elif face.folder is not None and (face.folder / "before.png").is_file():
                before = str(face.folder / "before.png")
            else:
                before = display_copy(self.session.photo(face))
        except (UserError, BoundaryError) as e:
            return None, None, f"**Edit failed:** {_one_line(e)}"
        except Exception as e:  # a bug must not end the session: say so and go on
            traceback.print_exc()
            return None, None, f"**Edit failed** (internal error: {e.__class__.__name__})"
        finally:
            if face.aligned is not None:
                free_unused_memory()  # the pasted photo's temporaries
        ms = (time.perf_counter() - t0) * 1000
        done = [f"{a} {s:+g} ({spec})" for a, s, spec in changes if s]
        if transfer and ref is not None:
            done.insert(0, f"{', '.join(transfer)} from {ref.name}")
        elif transfer:
            done.insert(0, "(upload a reference face for the transfer)")
        msg = f"{'; '.join(done) if done else 'reconstruction (no edit)'} - {ms:.0f} ms"
        return shown, (before, shown), msg

    def download(self, face: Face | None, ref: Face | None, keep_detail: bool, transfer, values):
        """(path of the full-size PNG, message): the current edit at the photo's size."""
        if face is None:
            return None, self.no_face()
        self.touch(face)
        self.touch(ref)
        try:
            full, _ = self._result(face, ref, keep_detail, transfer, values)
            folder = face.folder if face.folder is not None else self.faces_dir / face.key
            if not folder.is_dir() and face.folder is not None:
                raise PhotoGoneError(f"{face.name}: its files are no longer stored (its session ended); "
                                     "load it again")
            path = self._save(full, face.name, folder)
        except (UserError, BoundaryError) as e:
            return None, f"**Full-size PNG failed:** {_one_line(e)}"
        except Exception as e:  # a bug must not end the session: say so and go on
            traceback.print_exc()
            return None, f"**Full-size PNG failed** (internal error: {e.__class__.__name__})"
        finally:
            free_unused_memory()
        h, w = full.shape[:2]
        return str(path), f"Full-size PNG ready: {path.name} ({w}x{h} px)."

    def no_face(self) -> str:
        return (f"Upload a photo to start (a session ends after {duration(self.idle_s)} without activity; "
                "upload it again then).")

    def _save(self, image, name: str, folder: Path) -> Path:
        """Write ``image`` as ``<name>_edited.png`` in ``folder``, replacing the previous result."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{Path(name).stem}_edited.png"
        part = folder / f".{uuid.uuid4().hex}.png"
        try:
            Image.fromarray(image).save(part, format="PNG", compress_level=1)
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)
        return path


_malloc_trim = None


def free_unused_memory() -> None:
    """Hand freed heap memory back to the system (glibc's ``malloc_trim``; elsewhere nothing).
    A large photo is decoded, pasted into and freed by each event, but glibc keeps freed memory for
    reuse in the arena of every worker thread that touched it (and ``utils.malloc`` raises the trim
    threshold to 1 GB for training): without this the server's resident memory settled near 2.8 GB
    above idle after ten sessions of 8000x8000 photos, with it near 0.5 GB (docs/webapp.md)."""
    global _malloc_trim
    if _malloc_trim is None:
        _malloc_trim = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes
                import ctypes.util

                _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
                _malloc_trim.argtypes = [ctypes.c_size_t]
            except (OSError, AttributeError):
                _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


def duration(seconds: float) -> str:
    """``90`` -> ``1.5 minutes``, ``3`` -> ``3 seconds``."""
    return f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} seconds"


def _one_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0].rstrip(".") if text else e.__class__.__name__


# --------------------------------------------------------------------------------------- layout
def build_app(session: EditSession, title: str = "IA-FaceS face editor", root: Path | str | None = None,
              idle_s: float = DEFAULT_IDLE_MINUTES * 60, max_file_mb: float = 50):
    """The Gradio Blocks of the editor for ``session``; returns (blocks, handlers). ``root``: the
    app's temporary folder (default: a new ``iafaces_app_*``; ``handlers.close()`` removes it);
    ``idle_s``: a session's faces and files expire after that long without use; ``max_file_mb``:
    the upload limit stated on the page (give launch() the same, :func:`max_file_bytes`)."""
    import gradio as gr

    def photo_input(**kwargs):
        """An image upload that hands the uploaded file itself to the editor, which reads it with
        the project's one image opener (``image_mode=None``: Gradio converts nothing, so 16-bit
        grayscale, palette, alpha and EXIF orientation read as on the command line), and an
        unreadable file too (the editor says on the page what is wrong) instead of failing in
        Gradio's preprocessing. (Patched on the instance: a subclass would make Gradio write an
        app.pyi stub.)"""
        component = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"], **kwargs)
        strict = component.preprocess

        def preprocess(payload):
            try:
                return strict(payload)
            except Exception:
                return str(payload.path) if payload is not None and getattr(payload, "path", None) else None

        component.preprocess = preprocess
        return component

    h = Handlers(session, root, idle_s)
    ed = session.editor
    presets = [c for c in h.controls if c.preset]
    others = [c for c in h.controls if not c.preset]
    size = ed.size
    age = max(1, int(math.ceil(idle_s)))
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(max(1, min(60, age // 2)), age)) as demo:
        # the states expire idle_s after their last use (every event sets them again); their files go with them
        face_state = gr.State(None, time_to_live=idle_s, delete_callback=h.release)
        ref_state = gr.State(None, time_to_live=idle_s, delete_callback=h.release)
        gr.Markdown(f"## {title}\n`{ed.checkpoint}` &middot; {size} px model &middot; {ed.device} &middot; "
                    f"alignment recipe `{session.recipe or ed.align_recipe}`\n\n"
                    "1. Upload a photo (or an aligned face). 2. Move the sliders or take components from a "
                    "second face. 3. Compare before / after and make the full-size PNG.\n\n"
                    f"Uploads: at most **{max_file_mb:g} MB** and **{session.max_pixels / 1e6:g} megapixels**. "
                    f"A session ends after **{duration(idle_s)}** without activity, or when its tab is "
                    "closed; its photo and results are deleted then.", elem_id="intro")
        with gr.Row(equal_height=True):
            photo = photo_input(label="Photo", height=320, elem_id="photo")
            recon = gr.Image(label="Reconstruction (no edit)", interactive=False, format="png", height=320,
                             elem_id="reconstruction")
            edited = gr.Image(label="Edited", interactive=False, format="png", height=320, elem_id="edited")
        with gr.Row():
            mode = gr.Radio([("auto", "auto"), ("align the face", "align"), ("as is (already aligned)", "as is")],
                            value="auto", label="Photo needs alignment?",
                            info=f"auto: aligned unless it is a {size}x{size} image (taken as an aligned crop)")
            keep = gr.Checkbox(False, label="paste only the change", info="keeps the photo's own detail where "
                               "the edit changes nothing (aligned photos)")
        status = gr.Markdown("Upload a photo to start.", elem_id="status")
        with gr.Row():
            compare = gr.ImageSlider(label="Before / after (drag the handle)", type="numpy", format="png",
                                     max_height=360, elem_id="compare")
            with gr.Column():
                make_png = gr.Button("Make the full-size PNG", elem_id="make-png")
                download = gr.File(label="Full-size result (PNG)", interactive=False, elem_id="download")
                reset = gr.Button("Reset all edits", elem_id="reset")

        choices = [(label, spec) for label, spec in COMPONENT_CHOICES]
        sliders, selectors = [], []

        def control_rows(controls):
            for c in controls:
                with gr.Row():
                    sliders.append(gr.Slider(-c.limit, c.limit, value=0, step=0.5, label=c.label, scale=4,
                                             elem_id=f"slider-{c.name}"))
                    value = c.components if c.components in dict(COMPONENT_CHOICES).values() else "all"
                    selectors.append(gr.Dropdown(choices, value=value, label="components", scale=1, min_width=120,
                                                 elem_id=f"components-{c.name}"))

        with gr.Accordion("Attribute presets (+: toward the label in brackets, -: away from it; beard's label is "
                          "No_Beard, so beard - adds a beard)", open=True):
            control_rows(presets)
        if others:
            with gr.Accordion("More attributes (boundary fitted on first use, then stored)", open=False):
                control_rows(others)
        if session.source_error:
            gr.Markdown(f"Only stored boundaries can be used: {session.source_error}")
        with gr.Accordion("Component transfer from a second face", open=True):
            with gr.Row(equal_height=True):
                ref_photo = photo_input(label="Reference face", height=240, elem_id="reference")
                ref_recon = gr.Image(label="Reference reconstruction", interactive=False, format="png", height=240)
                transfer = gr.CheckboxGroup([(lab, spec) for lab, spec in COMPONENT_CHOICES[:5]],
                                            label="Take these components from the reference", elem_id="transfer")

        order = [x for pair in zip(sliders, selectors) for x in pair]  # slider 1, selector 1, slider 2, ...
        edit_inputs = [face_state, ref_state, keep, transfer, *order]
        # the states are outputs too: setting them again starts their idle time anew
        edit_outputs = [face_state, ref_state, edited, compare, download, status]

        def do_edit(face, ref, keep_detail, transfer_spec, *values, progress=gr.Progress()):
            shown, pair, msg = h.edit(face, ref, keep_detail, transfer_spec, values, progress)
            return face, ref, shown, pair, None, msg  # a new edit: the last full-size PNG is out of date

        def do_download(face, ref, keep_detail, transfer_spec, *values):
            path, msg = h.download(face, ref, keep_detail, transfer_spec, values)
            return face, ref, path, msg

        def sid(request) -> str | None:
            return getattr(request, "session_hash", None) if request is not None else None

        def with_request(fn):
            """Gradio passes a gr.Request to a parameter annotated with the class itself (this module's
            postponed annotations are strings Gradio cannot resolve)."""
            fn.__annotations__ = {"request": gr.Request}
            return fn

        @with_request
        def do_load(request, old, path, align_mode, ref, keep_detail, transfer_spec, *values,
                    progress=gr.Progress()):
            h.release(old)  # the face this upload replaces
            face, rec, msg = h.load(path, align_mode, sid(request))
            if face is None:
                return None, ref, rec, None, None, None, msg
            shown, pair, edit_msg = h.edit(face, ref, keep_detail, transfer_spec, values, progress)
            return face, ref, rec, shown, pair, None, f"{msg} Showing: {edit_msg}"

        @with_request
        def do_load_ref(request, old, path, align_mode):
            h.release(old)
            ref, rec, msg = h.load(path, align_mode, sid(request), keep_photo=False)
            return ref, rec, msg.replace("Loaded", "Reference", 1)

        @with_request
        def end_session(request):
            h.end_session(sid(request))

        gr.on([photo.change, mode.input], do_load, [face_state, photo, mode, ref_state, keep, transfer, *order],
              [face_state, ref_state, recon, edited, compare, download, status], api_name="load_face",
              trigger_mode="always_last")
        gr.on([ref_photo.change], do_load_ref, [ref_state, ref_photo, mode], [ref_state, ref_recon, status],
              api_name="load_reference").then(do_edit, edit_inputs, edit_outputs, api_visibility="private")
        triggers = [s.input for s in sliders] + [s.release for s in sliders] + [d.input for d in selectors] + \
            [transfer.input, keep.input]
        gr.on(triggers, do_edit, edit_inputs, edit_outputs, api_name="edit", trigger_mode="always_last",
              show_progress="minimal")
        make_png.click(do_download, edit_inputs, [face_state, ref_state, download, status], api_name="download")

        def do_reset():
            return [0 for _ in sliders] + [c.components if c.components in dict(COMPONENT_CHOICES).values()
                                           else "all" for c in h.controls] + [[]]

        reset.click(do_reset, None, [*sliders, *selectors, transfer], api_visibility="private").then(
            do_edit, edit_inputs, edit_outputs, api_visibility="private")
        demo.unload(end_session)
    return demo, h


# ------------------------------------------------------------------------------------ benchmark
def benchmark(session: EditSession, n: int) -> str:
    """Time ``n`` slider moves (edit + paste + screen copy) of a SynthFaces face."""
    import torch

    from data_loader import synthfaces as sf
    from data_loader.synthfaces.dataset import render_batch

    size = session.editor.size
    face_img = tensor_to_uint8(render_batch([sf.sample_factors(123, 0)], size)[0])
    t0 = time.perf_counter()
    face = session.load(face_img, "as is", name="synthface.png")
    t_load = time.perf_counter() - t0
    from editing import fit_boundary  # a direction from random embeddings: no label faces in a benchmark

    components = torch.randn(40, 4, session.editor.comp_dim, generator=torch.Generator().manual_seed(0))
    session._boundaries["Benchmark"] = fit_boundary(components, torch.arange(40) % 2, "Benchmark")
    times = []
    for i in range(n + 1):
        t = time.perf_counter()
        edited = session.edit(face, [("Benchmark", 0.5 * (i + 1), "mouth")])
        display_copy(session.to_photo(face, edited))
        times.append(time.perf_counter() - t)
    times = sorted(times[1:])  # the first move warms up
    return (f"{size}-px model on {session.editor.device}, {torch.get_num_threads()} threads: encode + reconstruct "
            f"{t_load * 1000:.0f} ms; per slider move median {times[len(times) // 2] * 1000:.0f} ms, "
            f"max {times[-1] * 1000:.0f} ms over {n} moves")


#: What ``--benchmark`` without ``--resume`` times (random weights: the time does not depend on them):
#: the default 64-px model and a released-format 256-px IA-FaceS.
BENCHMARK_MODELS = (("the default 64-px model (configs/synthfaces.json)", "config", "configs/synthfaces.json"),
                    ("a released-format 256-px IA-FaceS", "arch", "iafaces_256"))


def benchmark_editors(args) -> list[tuple[str, Editor]]:
    """(label, editor) for each of :data:`BENCHMARK_MODELS`, on ``args.device`` in ``args.precision``."""
    import torch

    from model import build_model_config, build_networks
    from trainer.config import load_config
    from utils.device import resolve_device

    device = resolve_device(args.device)
    out = []
    for label, kind, name in BENCHMARK_MODELS:
        torch.manual_seed(0)
        cfg = load_config(Path(__file__).resolve().parent / name).model_config() if kind == "config" \
            else build_model_config(name)
        E, G, _ = build_networks(cfg, discriminator=False)
        out.append((label, Editor(E.to(device), G.to(device), device, batch_size=8, precision=args.precision)))
    return out


# ------------------------------------------------------------------------------------------ main
def check_args(args) -> None:
    """One-line errors for numbers out of range (before anything is loaded)."""
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")
    lo, hi = FILE_MB_RANGE
    if not (math.isfinite(args.max_file_mb) and lo <= args.max_file_mb <= hi):
        raise UserError(f"--max_file_mb must be a finite number from {lo:g} to {hi:g} (MB), got {args.max_file_mb:g}")
    lo, hi = IDLE_MINUTES_RANGE
    if not (math.isfinite(args.idle_minutes) and lo <= args.idle_minutes <= hi):
        raise UserError(f"--idle_minutes must be a finite number from {lo:g} to {hi:g}, got {args.idle_minutes:g}")
    if args.benchmark < 0:
        raise UserError(f"--benchmark must be a number of slider moves (0: serve), got {args.benchmark}")


def max_file_bytes(max_file_mb: float) -> int:
    """``--max_file_mb`` in bytes, as Gradio counts a megabyte (1024 x 1024 bytes)."""
    return int(round(max_file_mb * 1024 * 1024))


def check_port(host: str, port: int) -> None:
    """A one-line error when ``host:port`` cannot be listened on (in use, or not this machine's)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise UserError(f"--host {host}: not an address of this machine ({e.__class__.__name__}); use 127.0.0.1 "
                        "(this machine only) or 0.0.0.0 (every interface)") from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself binds
        try:
            s.bind(address)
        except OSError as e:
            raise port_error(host, port, e) from None


def port_error(host: str, port: int, e: OSError) -> UserError:
    if e.errno == errno.EADDRINUSE or "empty port" in str(e):
        return UserError(f"port {port} on {host} is already in use (another program, or the editor already "
                         "running); stop it or choose another with --port N")
    return UserError(f"cannot listen on {host}:{port} ({e.strerror or e}); choose another --host or --port")


@contextmanager
def temp_root():
    """A new ``iafaces_app_*`` folder, removed when the block ends, at exit, and on SIGTERM / SIGHUP
    (turned into KeyboardInterrupt, which Gradio and ``main_guard`` handle like Ctrl+C)."""
    root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))

    def remove():
        shutil.rmtree(root, ignore_errors=True)

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    atexit.register(remove)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                previous[sig] = signal.signal(sig, interrupt)
    try:
        yield root
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        remove()
        atexit.unregister(remove)


@contextmanager
def environment(**values: str):
    """``os.environ`` with ``values`` set (unless already set by the user) for the block."""
    added = [k for k in values if k not in os.environ]
    for k in added:
        os.environ[k] = values[k]
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    if args.resume is None and not args.benchmark:
        newest = newest_checkpoint()
        if newest is None:
            raise UserError(f"no --resume given and no checkpoint under {CHECKPOINT_ROOT}/; {TRAIN_HINT}")
        print(f"using the newest checkpoint: {newest}", file=sys.stderr)
        args.resume = str(newest)
    # the app's temporary folder first, Gradio's cache in it (set before Gradio is imported: some of its
    # modules read GRADIO_TEMP_DIR once); removed after a failed start, on exit, Ctrl+C and SIGTERM
    with temp_root() as root, environment(GRADIO_TEMP_DIR=str(root / "gradio")):
        if not args.benchmark:
            try:
                import gradio  # noqa: F401
            except ImportError:
                raise UserError("the web editor needs Gradio: pip install -r requirements.txt") from None
            check_port(args.host, args.port)  # before the model loads
        if args.benchmark and args.resume is None:  # no server, no checkpoint: both model sizes, random weights
            args.boundary_dir = args.boundary_dir or str(root / "boundaries")  # none is read or written
            import torch

            threads = torch.get_num_threads()
            for label, editor in benchmark_editors(args):
                torch.set_num_threads(threads)  # each session sets its own (1 for the 64-px model)
                print(f"{label}, {editor.precision}: {benchmark(make_session(args, editor), args.benchmark)}")
            return 0
        session = make_session(args)
        if args.benchmark:
            print(benchmark(session, args.benchmark))
            return 0
        if args.host not in LOCAL_HOSTS:
            print(f"warning: listening on {args.host}: anyone who can reach this machine on port {args.port} can "
                  "use the editor (there is no login)", file=sys.stderr)
        if args.share:
            print("warning: --share creates a public gradio.live link: anyone with the link can use the editor "
                  "and upload to this machine", file=sys.stderr)
        demo, handlers = build_app(session, root=root, idle_s=args.idle_minutes * 60, max_file_mb=args.max_file_mb)
        try:
            demo.queue(default_concurrency_limit=1).launch(
                server_name=args.host, server_port=args.port, share=args.share,
                max_file_size=max_file_bytes(args.max_file_mb), show_error=True, inbrowser=False)
        except OSError as e:  # the port was taken between check_port and now
            if "empty port" in str(e) or e.errno == errno.EADDRINUSE:
                raise port_error(args.host, args.port, e) from None
            raise
        finally:
            demo.close()
            handlers.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
