"""Attribute boundaries in component-embedding space (IA-FaceS attribute manipulation): for an
attribute, one unit normal per component embedding (``l_eye, r_eye, nose, mouth``) pointing toward
the faces with it; an edit is ``z[:, i] += alpha * n_i``.

One module per role:

- :mod:`.record` -- :class:`Boundary` (normals, offsets, accuracies, provenance) and its file format;
- :mod:`.recipes` -- :func:`fit_boundary` with the four recipes (``release``, ``standardized``,
  ``mean``, ``conditional``; the module docstring says how each finds the hyperplane);
- :mod:`.labels` -- the label sources (SynthFaces, CelebA-HQ attribute file, id lists);
- :mod:`.store` -- where boundaries are stored, and :func:`get_boundary`: load if stored and valid,
  else fit and store.
"""
from .labels import (DEFAULT_SYNTH_FACES, CelebAHQLabels, FileLabels, LabelSource, ListLabels, SynthFacesLabels,
                     default_label_source)
from .recipes import DEFAULT_RECIPE, MIN_PER_CLASS, RECIPES, check_counts, fit_boundary, release_split
from .record import FORMAT, SELECT_RATIO, TRAIN_RATIO, Boundary, BoundaryError
from .store import boundary_path, default_boundary_dir, find_stored, get_boundary, label_embeddings

__all__ = ["Boundary", "BoundaryError", "CelebAHQLabels", "DEFAULT_RECIPE", "DEFAULT_SYNTH_FACES", "FORMAT",
           "FileLabels", "LabelSource", "ListLabels", "MIN_PER_CLASS", "RECIPES", "SELECT_RATIO", "SynthFacesLabels",
           "TRAIN_RATIO", "boundary_path", "check_counts", "default_boundary_dir", "default_label_source",
           "find_stored", "fit_boundary", "get_boundary", "label_embeddings", "release_split"]
