"""SynthFaces benchmark: IA-FaceS editing scored against exact counterfactual ground truth.

    python -m evaluation.synth_benchmark --resume saved/models/iafaces-synthfaces-64/RUN/best.pth
    python -m evaluation.synth_benchmark --resume CKPT --num 200 --out DIR --device auto

On ``--num`` held-out SynthFaces faces (the test index range of the checkpoint's data set, disjoint
from its training and validation faces), rendered at the model's size, it measures

* reconstruction: MSE (on [-1, 1]), PSNR and SSIM;
* component transfer (l_eye, r_eye, eyes, nose, mouth; face k takes the component of face k+1):
  error inside the component's box against the counterfactual ground truth (the target rendered
  with the reference's component factors), MSE_irr outside it, classifier agreement with the
  ground-truth labels of the attributes of that component, and the same for two baselines: no edit
  (the target reconstruction) and pasting the reference reconstruction's box pixels into the target
  reconstruction (plus, for reference, the same paste on the real renders);
* attribute manipulation with the official presets (``editing.PRESETS``: attribute, components
  and direction of each edit) on the faces that lack the target label: error against the ground
  truth (the face with the attribute flipped), success rate by the attribute classifier, and how
  often the classifier's other labels changed (attributes that the ground-truth flip itself
  changes are not counted). The boundaries are fitted by ``editing.boundaries`` on the labels of
  ``--num_label_faces`` SynthFaces training faces with the recipe that the checkpoint's training
  config names (``editing.boundary_recipe``, e.g. ``conditional`` for configs/synthfaces.json;
  ``release``, the release's SVM, where it names none); ``--recipe`` overrides it. Strengths are
  calibrated by default (``--strength_mode calibrated``): each edited component moves by its
  boundary's class gap (the distance between the mean projections of the label faces with and
  without the attribute) times a multiple fitted per edit on validation faces (never the test
  faces): the smallest of ``FIT_SCALES`` at which the classifier reads the target label on
  ``FIT_SUCCESS`` of the edited validation faces. ``--strength_scale`` fixes that multiple;
  ``--strength_mode official`` uses the presets' strengths (and ``--eye_strength``) instead;
* single-eye editing: Left_Eye_Closed on l_eye only and Right_Eye_Closed on r_eye only, on faces
  with both eyes open: the target eye closed (classifier), the other eye's label kept;
* IFG (``D(edit) - D(reconstruction)``) for every edit with the checkpoint's discriminator or
  ``--discriminator``; without either, the report says that IFG was not scored and why.

Output in ``--out``: ``results.json``, ``report.md`` (also printed) with the paper's targets marked
met / not met, and image grids ``grid_*.png``. The attribute classifier is read from
``--classifier`` or from the cache ``saved/classifiers/``, keyed by every setting that trained it
(``synthfaces_<size>_<faces>f_<epochs>e_d<seed>_<key>.pt``); when no cached one matches, one is
trained (one to two minutes at 64 px) and stored there with its validation accuracy. A classifier
below ``--min_classifier_accuracy`` is refused; the report names the classifier that scored it.

Modules: ``edits`` (face setup and edit makers), ``runner`` (:class:`Benchmark`), ``targets``
(the targets and their verdicts), ``report`` (Markdown), ``cli`` (the command).
"""
from .cli import build_parser, get_classifier, main, run_from_args
from .edits import (REFERENCES, SINGLE_EYE, TRANSFER_COMPONENTS, ModelEdits, ReferenceEdits, held_out_ids,
                    synthfaces_setup)
from .report import to_markdown
from .runner import FIT_FACES, FIT_SCALES, FIT_SUCCESS, STRENGTH_MODES, Benchmark
from .targets import TARGETS, editing_targets_met, evaluate_targets, locality

__all__ = ["Benchmark", "FIT_FACES", "FIT_SCALES", "FIT_SUCCESS", "ModelEdits", "REFERENCES", "ReferenceEdits",
           "SINGLE_EYE", "STRENGTH_MODES", "TARGETS", "TRANSFER_COMPONENTS", "build_parser", "editing_targets_met",
           "evaluate_targets", "get_classifier", "held_out_ids", "locality", "main", "run_from_args",
           "synthfaces_setup", "to_markdown"]
