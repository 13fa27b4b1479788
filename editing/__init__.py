"""Face editing with a trained IA-FaceS model: the :class:`Editor` (encode, decode, transfer,
apply_direction), the official attribute presets and the attribute boundaries (``editing.boundaries``:
fitted by one of four recipes, see its ``recipes`` module).

    from editing import Editor, get_boundary
    face = Editor.from_checkpoint(ckpt).align("photo.jpg")   # your own photos: editing.align
"""
from model.boxes import component_indices, component_label
from utils.errors import EditingError

from .boundaries import (RECIPES, Boundary, BoundaryError, CelebAHQLabels, LabelSource, ListLabels, SynthFacesLabels,
                         default_boundary_dir, default_label_source, find_stored, fit_boundary, get_boundary)
from .editor import PRESETS, Editor, Preset

__all__ = ["AlignedFace", "Boundary", "BoundaryError", "CelebAHQLabels", "EditingError", "Editor", "FaceAligner",
           "LabelSource", "ListLabels", "PRESETS", "Preset", "RECIPES", "SynthFacesLabels", "component_indices",
           "component_label", "default_boundary_dir",
           "default_label_source", "find_stored", "fit_boundary", "get_boundary"]


def __getattr__(name):  # editing.align is imported on first use (and runs as ``python -m editing.align``)
    if name in ("AlignedFace", "FaceAligner"):
        from . import align
        return getattr(align, name)
    raise AttributeError(f"module 'editing' has no attribute '{name}'")
