"""Evaluation of IA-FaceS: metrics with the official conventions (``evaluation.metrics``, registry
``METRICS``), the folder comparison command (``python -m evaluation.compare``), the SynthFaces
attribute classifier (``python -m evaluation.attr_classifier``) and the SynthFaces benchmark
(``python -m evaluation.synth_benchmark``). See evaluation/README.md."""
