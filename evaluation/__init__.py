"""Evaluation of IA-FaceS: metrics with the official conventions (``evaluation.metrics``, registry
``METRICS``), the folder comparison command (``python -m evaluation.compare``), the SynthFaces
attribute classifier (``python -m evaluation.attr_classifier``), the SynthFaces benchmark
(``python -m evaluation.synth_benchmark``), the paper's evaluation (``python -m evaluation.paper``) and speed
measurements (``python -m evaluation.speed``). See evaluation/README.md."""
import utils.omp  # noqa: F401  (before torch for ``python -m evaluation.<tool>``: OpenMP reads its wait policy then)
