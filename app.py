"""A local web editor for IA-FaceS faces (Gradio): upload a photo, move sliders, compare, download.

    python app.py --resume CKPT [--host 127.0.0.1] [--port 7860] [--device auto] [--share]

Without ``--resume`` the newest checkpoint under ``saved/models/`` is used. The page aligns an
uploaded photo like the model's training data (or takes an already aligned face as it is), encodes
it once and decodes it on every slider move: one slider per attribute preset and per attribute of the
label source (with a component selector), component transfer from a second face, a before/after
view and the full-size PNG. Boundaries load or fit through ``editing.get_boundary``, as in
``attr_manipulation.py``. ``--benchmark N`` measures the time of N slider moves instead of serving.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
import uuid
from collections import deque
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine unless --share

from PIL import Image  # noqa: E402

from editing import BoundaryError, Editor, default_label_source  # noqa: E402
from editing.align import DETECTORS, RECIPES  # noqa: E402
from editing.session import COMPONENT_CHOICES, EditSession, Face, display_copy  # noqa: E402
from utils.cli import ArgumentParser, main_guard  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.image_io import tensor_to_uint8  # noqa: E402

CHECKPOINT_ROOT = Path("saved/models")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
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
    p.add_argument("--max_file_mb", type=float, default=50, help="largest upload in MB (default 50)")
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
                   help="time N slider moves on a SynthFaces face (no server) and exit")
    return p


def newest_checkpoint(root: Path = CHECKPOINT_ROOT) -> Path | None:
    """The most recently written ``.pth`` under ``root`` (None when there is none)."""
    found = [p for p in root.rglob("*.pth") if p.is_file()] if root.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def make_session(args) -> EditSession:
    if args.num_label_faces is not None and args.num_label_faces < 1:
        raise UserError("--num_label_faces must be positive")
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads must be at least 1")
    editor = Editor.from_checkpoint(args.resume, args.device, batch_size=8)
    threads = args.threads or (1 if editor.size <= 128 and editor.device.type == "cpu" else None)
    explicit = args.label_file is not None or args.num_label_faces is not None
    return EditSession(editor, args.boundary_dir,
                       lambda: default_label_source(editor, args.label_file, args.label_img_dir, args.num_label_faces),
                       explicit_source=explicit, recipe=args.align_recipe, detector=args.detector,
                       threads=threads)


# ------------------------------------------------------------------------------------- handlers
class Handlers:
    """The page's functions: plain Python on top of an :class:`EditSession` (gradio only for
    progress and updates), kept apart from the layout so that tests can call them."""

    def __init__(self, session: EditSession):
        self.session = session
        self.controls = session.controls
        self.out_dir = Path(tempfile.mkdtemp(prefix="iafaces_app_"))
        self._written: deque[Path] = deque()

    def load(self, path, mode: str):
        """(face or None, reconstruction for the screen, message)."""
        if not path:
            return None, None, "Upload a photo to start."
        name = Path(str(path)).name
        try:
            face = self.session.load(path, mode or "auto", name=name)
        except UserError as e:
            return None, None, f"**Could not use this upload:** {_one_line(e)}. Upload another photo."
        except Exception as e:  # a bug must not end the session: say so and go on
            traceback.print_exc()
            return None, None, f"**Could not use this upload** (internal error: {e.__class__.__name__}). Try another photo."
        how = ("aligned (face detected, the edit is pasted back into the photo)" if face.aligned is not None else
               f"used as is (resized to {self.session.editor.size} px; choose 'align' if it is an ordinary photo)")
        return face, display_copy(face.to_photo(face.reconstruction)), f"Loaded {name}: {how}."

    def changes(self, values):
        """Slider and selector values (interleaved) -> [(attribute, strength, spec)]."""
        return [(c.attribute, float(values[2 * i] or 0), values[2 * i + 1] or c.components)
                for i, c in enumerate(self.controls)]

    def edit(self, face: Face | None, ref: Face | None, keep_detail: bool, transfer, values, progress=None):
        """(edited for the screen, (before, after) pair, download path, message)."""
        if face is None:
            return None, None, None, "Upload a photo to start."
        say = (lambda m: progress(None, desc=m)) if progress is not None else (lambda m: None)
        changes = self.changes(values)
        for attr, s, _ in changes:
            if s and not self.session.is_stored(attr):
                say(f"fitting the {attr} boundary (first time only; it is stored for later runs)")
        t0 = time.perf_counter()
        try:
            edited = self.session.edit(face, changes, ref, list(transfer or []), log=say)
        except (UserError, BoundaryError) as e:
            return None, None, None, f"**Edit failed:** {_one_line(e)}"
        full = face.to_photo(edited, keep_detail)
        ms = (time.perf_counter() - t0) * 1000
        path = self._save(full, face.name)
        before = face.photo if face.aligned is not None else tensor_to_uint8(face.crop)
        shown = display_copy(full)
        done = [f"{a} {s:+g} ({spec})" for a, s, spec in changes if s]
        if transfer and ref is not None:
            done.insert(0, f"{', '.join(transfer)} from {ref.name}")
        elif transfer:
            done.insert(0, "(upload a reference face for the transfer)")
        msg = f"{'; '.join(done) if done else 'reconstruction (no edit)'} - {ms:.0f} ms"
        return shown, (display_copy(before), shown), str(path), msg

    def _save(self, image, name: str) -> Path:
        path = self.out_dir / uuid.uuid4().hex[:12] / f"{Path(name).stem}_edited.png"
        path.parent.mkdir(parents=True)
        Image.fromarray(image).save(path, compress_level=1)
        self._written.append(path)
        while len(self._written) > 64:  # gradio keeps its own copy; ours are only needed briefly
            old = self._written.popleft()
            old.unlink(missing_ok=True)
            old.parent.rmdir()
        return path


def _one_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0].rstrip(".") if text else e.__class__.__name__


# --------------------------------------------------------------------------------------- layout
def build_app(session: EditSession, title: str = "IA-FaceS face editor"):
    """The Gradio Blocks of the editor for ``session``; returns (blocks, handlers)."""
    import gradio as gr

    def photo_input(**kwargs):
        """An image upload that hands an unreadable file to the editor (which says on the page what
        is wrong) instead of failing in Gradio's preprocessing. (Patched on the instance: a subclass
        would make Gradio write an app.pyi stub.)"""
        component = gr.Image(type="filepath", sources=["upload", "clipboard"], **kwargs)
        strict = component.preprocess

        def preprocess(payload):
            try:
                return strict(payload)
            except Exception:
                return str(payload.path) if payload is not None and getattr(payload, "path", None) else None

        component.preprocess = preprocess
        return component

    h = Handlers(session)
    ed = session.editor
    presets = [c for c in h.controls if c.preset]
    others = [c for c in h.controls if not c.preset]
    size = ed.size
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        face_state, ref_state = gr.State(None), gr.State(None)
        gr.Markdown(f"## {title}\n`{ed.checkpoint}` &middot; {size} px model &middot; {ed.device} &middot; "
                    f"alignment recipe `{session.recipe or ed.align_recipe}`\n\n"
                    "1. Upload a photo (or an aligned face). 2. Move the sliders or take components from a "
                    "second face. 3. Compare before / after and download the full-size PNG.")
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

        controls = [x for pair in zip(sliders, selectors) for x in pair]
        order = [x for x in controls]  # slider 1, selector 1, slider 2, ...
        edit_inputs = [face_state, ref_state, keep, transfer, *order]
        edit_outputs = [edited, compare, download, status]

        def do_edit(face, ref, keep_detail, transfer_spec, *values, progress=gr.Progress()):
            return h.edit(face, ref, keep_detail, transfer_spec, values, progress)

        def do_load(path, align_mode, ref, keep_detail, transfer_spec, *values, progress=gr.Progress()):
            face, rec, msg = h.load(path, align_mode)
            if face is None:
                return None, rec, None, None, None, msg
            shown, pair, file, edit_msg = h.edit(face, ref, keep_detail, transfer_spec, values, progress)
            return face, rec, shown, pair, file, f"{msg} Showing: {edit_msg}"

        def do_load_ref(path, align_mode):
            ref, rec, msg = h.load(path, align_mode)
            return ref, rec, msg.replace("Loaded", "Reference", 1)

        gr.on([photo.change, mode.input], do_load, [photo, mode, ref_state, keep, transfer, *order],
              [face_state, recon, edited, compare, download, status], api_name="load_face", trigger_mode="always_last")
        gr.on([ref_photo.change], do_load_ref, [ref_photo, mode], [ref_state, ref_recon, status],
              api_name="load_reference").then(do_edit, edit_inputs, edit_outputs, api_visibility="private")
        triggers = [s.input for s in sliders] + [s.release for s in sliders] + [d.input for d in selectors] + \
            [transfer.input, keep.input]
        gr.on(triggers, do_edit, edit_inputs, edit_outputs, api_name="edit", trigger_mode="always_last",
              show_progress="minimal")

        def do_reset():
            return [0 for _ in sliders] + [c.components if c.components in dict(COMPONENT_CHOICES).values()
                                           else "all" for c in h.controls] + [[]]

        reset.click(do_reset, None, [*sliders, *selectors, transfer], api_visibility="private").then(
            do_edit, edit_inputs, edit_outputs, api_visibility="private")
    return demo, h


# ------------------------------------------------------------------------------------ benchmark
def benchmark(session: EditSession, n: int) -> str:
    """Time ``n`` slider moves (edit + paste + display copy + PNG) of a SynthFaces face."""
    import torch

    from data_loader import synthfaces as sf
    from data_loader.synthfaces.dataset import render_batch

    size = session.editor.size
    face_img = tensor_to_uint8(render_batch([sf.sample_factors(123, 0)], size)[0])
    h = Handlers(session)
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
        h._save(display_copy(face.to_photo(edited)), face.name)
        times.append(time.perf_counter() - t)
    times = sorted(times[1:])  # the first move warms up
    return (f"{size}-px model on {session.editor.device}, {torch.get_num_threads()} threads: encode + reconstruct "
            f"{t_load * 1000:.0f} ms; per slider move median {times[len(times) // 2] * 1000:.0f} ms, "
            f"max {times[-1] * 1000:.0f} ms over {n} moves")


# ------------------------------------------------------------------------------------------ main
@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")
    if args.max_file_mb <= 0:
        raise UserError("--max_file_mb must be positive")
    if args.resume is None:
        newest = newest_checkpoint()
        if newest is None:
            raise UserError(f"no --resume given and no checkpoint under {CHECKPOINT_ROOT}/; {TRAIN_HINT}")
        print(f"using the newest checkpoint: {newest}", file=sys.stderr)
        args.resume = str(newest)
    session = make_session(args)
    if args.benchmark:
        print(benchmark(session, args.benchmark))
        return 0
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError("the web editor needs Gradio: pip install -r requirements.txt") from None
    if args.host not in LOCAL_HOSTS:
        print(f"warning: listening on {args.host}: anyone who can reach this machine on port {args.port} can use "
              "the editor (there is no login)", file=sys.stderr)
    if args.share:
        print("warning: --share creates a public gradio.live link: anyone with the link can use the editor and "
              "upload to this machine", file=sys.stderr)
    demo, _ = build_app(session)
    demo.queue(default_concurrency_limit=1).launch(server_name=args.host, server_port=args.port, share=args.share,
                                                   max_file_size=f"{args.max_file_mb:g}mb", show_error=True,
                                                   inbrowser=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
