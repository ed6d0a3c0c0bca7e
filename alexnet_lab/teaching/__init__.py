"""The notebooks' helpers, one module per topic.

Figures: :mod:`~alexnet_lab.teaching.plots` (training curves, and what every figure shares),
:mod:`~alexnet_lab.teaching.gallery` (grids of images, the worst mistakes),
:mod:`~alexnet_lab.teaching.evaluation` (confusion matrices, per-class accuracy),
:mod:`~alexnet_lab.teaching.filters` (filters and feature maps),
:mod:`~alexnet_lab.teaching.diagrams` (architecture diagrams and per-layer costs).
Experiments: :mod:`~alexnet_lab.teaching.activations` (ReLU against tanh, notebook 01),
:mod:`~alexnet_lab.teaching.costs` (size, speed and memory of training),
:mod:`~alexnet_lab.teaching.norms` (normalization, notebook 03),
:mod:`~alexnet_lab.teaching.smoke_test` (failure modes, notebook 04),
:mod:`~alexnet_lab.teaching.recipe` (the paper's training recipe, notebook 07),
:mod:`~alexnet_lab.teaching.fine_tuning` (your own images, notebook 08).
And :mod:`~alexnet_lab.teaching.widgets` (interactive explorers), :mod:`~alexnet_lab.teaching.transfer`
(weights between Keras and PyTorch), :mod:`~alexnet_lab.teaching.notebook` (a notebook's first cell).
"""
