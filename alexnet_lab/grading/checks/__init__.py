"""Checks a student can run on their own AlexNet, and the autograder runs too.

Three families of checks, for a Keras model or a PyTorch module alike::

    from alexnet_lab.grading import checks
    print(checks.check_model(model, "classic"))

* **Architecture** (:func:`check_model`, :func:`assert_model_matches`, in
  :mod:`~alexnet_lab.grading.checks.comparison`): runs one image through the model, layer by
  layer (:func:`trace_model`, in :mod:`~alexnet_lab.grading.checks.tracing`), and compares every
  layer with the framework-free reference of :mod:`alexnet_lab.core.architecture`: its kind,
  output shape, parameter count, activation function, pooling window and dropout rate. The
  feedback names the first layer that differs and says what to change::

      conv1 gives 54×54×96 where the reference gives 55×55×96: (n + 2p − k) / s + 1 =
      (224 + 2·0 − 11) / 4 + 1 = 54 (rounded down). For a 224×224 input use padding=2,
      or feed 227×227 images.

* **Set-up** (:func:`check_loss_setup`, :func:`check_eval_mode`, :func:`check_inputs`,
  :func:`check_initialization`, in :mod:`~alexnet_lab.grading.checks.training_setup`): the
  mistakes that let a model train badly without any error message: a softmax before a loss that
  applies softmax itself ("double softmax"), BatchNorm or dropout left in training mode when
  evaluating, images in 0-255, weights that start at zero.

* **Own code** (:func:`assert_own_code`, in :mod:`~alexnet_lab.grading.checks.own_code`): a
  student's model function must write the layers itself, not call the course's builders or read
  the reference's records (Assignment A's implementation checks start with it).

* **Training** (:func:`diagnose_training`, :func:`assert_accuracy`, in
  :mod:`~alexnet_lab.grading.checks.diagnosis`): reads a training history and, when accuracy
  stays near chance, says which of the above is the likely cause, with the numbers that show it.

Every check returns findings (:mod:`~alexnet_lab.grading.checks.results`) rather than raising,
so a notebook can print them; the ``assert_*`` functions raise an ``AssertionError`` carrying the
same message, for graded cells. This package imports neither TensorFlow nor PyTorch until a
model of that framework is checked.
"""

from __future__ import annotations

from alexnet_lab.grading.checks.comparison import assert_model_matches, check_model
from alexnet_lab.grading.checks.diagnosis import assert_accuracy, chance_accuracy, diagnose_training
from alexnet_lab.grading.checks.own_code import assert_own_code, course_code_in
from alexnet_lab.grading.checks.results import CheckReport, Finding, Findings
from alexnet_lab.grading.checks.tracing import ObservedLayer, Trace, trace_model
from alexnet_lab.grading.checks.training_setup import (
    assert_eval_mode,
    assert_inputs,
    assert_loss_setup,
    check_eval_mode,
    check_initialization,
    check_inputs,
    check_loss_setup,
    double_softmax_loss_floor,
)

__all__ = [
    "Finding", "Findings", "CheckReport", "ObservedLayer", "Trace", "trace_model",
    "check_model", "assert_model_matches", "assert_own_code", "course_code_in",
    "check_loss_setup", "assert_loss_setup", "check_eval_mode", "assert_eval_mode",
    "check_inputs", "assert_inputs", "check_initialization",
    "diagnose_training", "assert_accuracy", "chance_accuracy", "double_softmax_loss_floor",
]
