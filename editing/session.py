"""Interactive editing without a user interface: the state behind the web editor (``app.py``).

A face is read, aligned when it needs it, and encoded **once** (:meth:`EditSession.load`); every
later edit only changes its component embeddings and decodes (:meth:`EditSession.edit`), the same
operations as the editing scripts: ``component_transfer.py`` (``Editor.transfer``) first, then
``attr_manipulation.py`` (``Editor.apply_direction`` along the boundaries of ``get_boundary``).

    session = EditSession(Editor.from_checkpoint(ckpt))
    face = session.load("photo.jpg")                       # align="auto"
    edited = session.edit(face, [("Mouth_Slightly_Open", 4.0, "mouth")])
    result = face.to_photo(edited)                         # uint8 [H, W, 3], the photo's size
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from data_loader.synthfaces import ATTRIBUTE_COMPONENTS
from model.boxes import COMPONENTS, component_indices
from utils.errors import AlignError, EditingError
from utils.image_io import pil_to_tensor, tensor_to_uint8

from .align import DEFAULT_MAX_PIXELS, AlignedFace, load_photo
from .boundaries import (Boundary, BoundaryError, LabelSource, default_boundary_dir, default_label_source,
                         find_stored, get_boundary)
from .editor import PRESETS, Editor

DEFAULT_STRENGTH = 3.0  # strength of a non-preset attribute (as attr_manipulation.py)
ALIGN_MODES = ("auto", "align", "as is")
#: (label, component spec) of the component selector of every attribute control
COMPONENT_CHOICES = (("both eyes", "eyes"), ("left eye", "l_eye"), ("right eye", "r_eye"), ("nose", "nose"),
                     ("mouth", "mouth"), ("all", "all"))
Change = tuple[str, float, str]  # (attribute, strength, component spec)


@dataclass(frozen=True)
class Control:
    """One attribute slider: a preset (official attribute, components and strength) or an attribute
    of the label source (its SynthFaces components, strength 3). A slider's value is the strength
    along the boundary of ``attribute`` (the label): + toward faces with that label, - away from
    it. ``strength`` is the official edit as a value of this slider: the preset's strength times
    its sign, so -9 for ``beard``, whose label is ``No_Beard`` (the official edit adds a beard)."""
    name: str
    attribute: str
    components: str
    strength: float
    preset: bool = False

    @property
    def limit(self) -> float:
        """Slider range: +-2.5x the official strength's size, at least +-5."""
        return float(max(5, math.ceil(2.5 * abs(self.strength))))

    @property
    def label(self) -> str:
        if self.preset:
            return f"{self.name} ({self.attribute}, official {self.strength:g})"
        return self.attribute


def spec_of(components: Sequence[str]) -> str:
    """A selector value for a tuple of components: ``(l_eye, r_eye)`` -> ``eyes``, all four -> ``all``."""
    idx = component_indices(list(components)) if components else tuple(range(len(COMPONENTS)))
    for _, spec in COMPONENT_CHOICES:
        if component_indices(spec) == idx:
            return spec
    return ",".join(COMPONENTS[i] for i in idx)


@dataclass
class Face:
    """One uploaded face, encoded once. ``photo`` the image as read (uint8 [H, W, 3]); ``crop``
    [3, S, S] the model's input; ``aligned`` the alignment (None: used as is, resized to the model);
    ``content``/``components`` its encoding; ``reconstruction`` [1, 3, S, S]."""
    name: str
    photo: np.ndarray
    crop: Tensor
    aligned: Optional[AlignedFace]
    content: Tensor
    components: Tensor
    reconstruction: Tensor

    def to_photo(self, edited: Tensor, keep_detail: bool = False) -> np.ndarray:
        """The full-size result (uint8 [H, W, 3]): an aligned face is pasted back into its photo
        (``keep_detail``: only the change against the reconstruction); else the model-size crop."""
        if self.aligned is None:
            return tensor_to_uint8(edited)
        return self.aligned.paste(edited, base=self.reconstruction if keep_detail else None)


class EditSession:
    """Faces, boundaries and edits for one editor (thread-safe for reading; boundaries are cached).

    ``label_source``: a callable making the :class:`LabelSource` that boundaries are fitted from
    (default :func:`default_label_source`); ``explicit_source`` as in ``get_boundary``."""

    def __init__(self, editor: Editor, boundary_dir: Union[str, os.PathLike, None] = None,
                 label_source: Optional[Callable[[], LabelSource]] = None, explicit_source: bool = False,
                 recipe: Optional[str] = None, detector: str = "hog", max_pixels: int = DEFAULT_MAX_PIXELS,
                 threads: Optional[int] = None):
        self.editor, self.threads = editor, threads
        self.boundary_dir = Path(boundary_dir) if boundary_dir else default_boundary_dir(editor.checkpoint)
        self.label_source = label_source or (lambda: default_label_source(editor))
        self.explicit_source = explicit_source
        self.recipe, self.detector, self.max_pixels = recipe, detector, int(max_pixels)
        self._boundaries: dict[str, Boundary] = {}
        self._source: Optional[LabelSource] = None
        self.source_error: Optional[str] = None
        self.controls = self._make_controls()

    # ---- attributes
    def source(self) -> LabelSource:
        if self._source is None:
            self._source = self.label_source()
        return self._source

    def _make_controls(self) -> list[Control]:
        controls = [Control(k, p.attribute, p.components, p.label_strength(p.strength), True)
                    for k, p in PRESETS.items()]
        seen = {c.attribute.lower() for c in controls}
        try:
            names = list(self.source().attribute_names)
        except BoundaryError as e:  # e.g. a CelebA-HQ model without a label file: stored boundaries only
            self.source_error, names = str(e), []
        if self.boundary_dir.is_dir():
            names += sorted(p.stem for p in self.boundary_dir.glob("*.pt") if not p.stem.startswith("embeddings_"))
        for a in names:
            if a.lower() not in seen:
                seen.add(a.lower())
                carriers = next((v for k, v in ATTRIBUTE_COMPONENTS.items() if k.lower() == a.lower()), ())
                controls.append(Control(a, a, spec_of(carriers), DEFAULT_STRENGTH))
        return controls

    def is_stored(self, attribute: str) -> bool:
        """True when the boundary is loaded already or stored (no fitting needed)."""
        return attribute in self._boundaries or find_stored(self.boundary_dir, attribute) is not None

    def boundary(self, attribute: str, log: Callable[[str], None] = lambda m: None) -> Boundary:
        """The boundary of ``attribute``: cached, else loaded or fitted by ``get_boundary`` exactly
        as ``attr_manipulation.py`` does (``log`` receives its messages)."""
        if attribute not in self._boundaries:
            if self.source_error and find_stored(self.boundary_dir, attribute) is None:
                raise BoundaryError(f"no stored boundary for {attribute} in {self.boundary_dir}, and none can be "
                                    f"fitted: {self.source_error}")
            self._boundaries[attribute] = get_boundary(self.editor, attribute, self.boundary_dir, source=self.source,
                                                       explicit_source=self.explicit_source, log=log)
        return self._boundaries[attribute]

    # ---- faces
    def needs_alignment(self, photo: np.ndarray) -> bool:
        """``auto`` mode: a square image of exactly the model's size is taken as already aligned."""
        h, w = photo.shape[:2]
        return not (h == w == self.editor.size)

    def load(self, photo, align: str = "auto", name: Optional[str] = None) -> Face:
        """Read ``photo`` (file, PIL image or uint8 array), align it (``align``: auto / align / as
        is), encode it once and reconstruct it. Errors (not an image, too large, no face) are
        one-line ``UserError`` kinds."""
        if align not in ALIGN_MODES:
            raise EditingError(f"unknown alignment mode '{align}'; choose from {', '.join(ALIGN_MODES)}")
        if name is None:
            name = Path(photo).name if isinstance(photo, (str, os.PathLike)) else "photo"
        try:
            arr = load_photo(photo, self.max_pixels)
        except AlignError as e:  # name the upload, not its temporary path
            if isinstance(photo, (str, os.PathLike)) and str(photo) in str(e):
                raise type(e)(str(e).replace(str(photo), name)) from None
            raise
        if arr.shape[0] < 8 or arr.shape[1] < 8:
            raise AlignError(f"{name}: image too small ({arr.shape[1]}x{arr.shape[0]} px)")
        aligned = None
        if align == "align" or (align == "auto" and self.needs_alignment(arr)):
            aligned = self.editor.aligner(self.recipe, self.detector).align(arr, name=name)[0]
            crop = aligned.crop
        else:  # as the editing scripts without --align: bicubic resize to the model size
            im = Image.fromarray(arr)
            if im.size != (self.editor.size, self.editor.size):
                im = im.resize((self.editor.size, self.editor.size), Image.BICUBIC)
            crop = pil_to_tensor(im)
        self._set_threads()
        content, components = self.editor.encode(crop[None])
        return Face(name, arr, crop, aligned, content, components, self.editor.decode(content, components))

    def _set_threads(self) -> None:
        if self.threads and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    # ---- edits
    def edited_components(self, face: Face, changes: Sequence[Change] = (), reference: Optional[Face] = None,
                          transfer: Union[str, Sequence[str]] = (), log: Callable[[str], None] = lambda m: None
                          ) -> Tensor:
        """Component embeddings [1, 4, D] after the transfer of ``transfer`` components from
        ``reference``, then every change with a non-zero strength (boundaries loaded or fitted)."""
        components = face.components
        if transfer and reference is not None:
            components = Editor.transfer(components, reference.components,
                                         list([transfer] if isinstance(transfer, str) else transfer))
        for attribute, strength, spec in changes:
            if strength:
                components = Editor.apply_direction(components, self.boundary(attribute, log), float(strength), spec)
        return components

    def edit(self, face: Face, changes: Sequence[Change] = (), reference: Optional[Face] = None,
             transfer: Union[str, Sequence[str]] = (), log: Callable[[str], None] = lambda m: None) -> Tensor:
        """The edited crop [1, 3, S, S]: one decode of the face's content with edited components
        (the reconstruction itself when nothing changes)."""
        self._set_threads()
        components = self.edited_components(face, changes, reference, transfer, log)
        if components is face.components:
            return face.reconstruction
        return self.editor.decode(face.content, components)


def display_copy(image: np.ndarray, min_side: int = 256, max_side: int = 1024) -> np.ndarray:
    """An image for the screen: small crops enlarged by an integer factor (nearest, pixels stay
    honest), large photos reduced; the download keeps the real pixels."""
    h, w = image.shape[:2]
    if max(h, w) < min_side:
        k = math.ceil(min_side / max(h, w))
        return np.ascontiguousarray(np.repeat(np.repeat(image, k, 0), k, 1))
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        return np.asarray(Image.fromarray(image).resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS))
    return image


__all__ = ["ALIGN_MODES", "COMPONENT_CHOICES", "Change", "Control", "DEFAULT_STRENGTH", "EditSession", "Face",
           "display_copy", "spec_of"]
