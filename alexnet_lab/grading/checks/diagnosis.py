"""What a training run's numbers point at: :func:`diagnose_training` and :func:`assert_accuracy`.

Reads a training history and, when accuracy stays near chance, says which mistake is the
likely cause (learning rate, initialization, input scaling, double softmax, evaluation mode),
with the numbers that show it. Given the model, a batch of inputs or the evaluation function,
it runs the set-up checks of :mod:`~alexnet_lab.grading.checks.training_setup` on them too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from alexnet_lab.grading.checks.results import Finding, Findings, as_findings
from alexnet_lab.grading.checks.training_setup import (
    check_eval_mode,
    check_initialization,
    check_inputs,
    double_softmax_loss_floor,
    looks_like_probabilities,
    model_outputs,
)

__all__ = ["chance_accuracy", "diagnose_training", "assert_accuracy"]


def chance_accuracy(num_classes: int) -> float:
    """The accuracy of guessing: ``1 / num_classes``."""
    return 1.0 / num_classes


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _metrics(history) -> Mapping[str, Sequence[float]]:
    """The per-epoch metrics of a History, a Keras History, or a plain dict."""
    if hasattr(history, "metrics") and isinstance(history.metrics, Mapping):
        return history.metrics
    if hasattr(history, "history") and isinstance(history.history, Mapping):  # keras.callbacks.History
        return history.history
    if isinstance(history, Mapping):
        return history
    raise TypeError("diagnose_training takes an alexnet_lab History, a Keras History or a dict of per-epoch lists, "
                    f"got {type(history).__name__}.")


def _get(metrics, *names) -> list[float]:
    for n in names:
        if n in metrics and len(metrics[n]):
            return [float(v) for v in metrics[n]]
    return []


@as_findings
def diagnose_training(history, num_classes: int, *, inputs=None, model=None, predict: Callable | None = None,
                      margin: float = 0.05) -> Findings:
    """Say what a training run's numbers point at, most of all when accuracy stays near chance.

    Args:
        history: an :class:`alexnet_lab.core.history.History`, a Keras ``History`` or a dict of
            per-epoch lists (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``).
        num_classes: for the chance level (``1 / num_classes``) and the loss of a uniform guess
            (``ln num_classes``).
        inputs: optional, a batch as the model receives it: checked for scaling.
        model: optional, the trained model: its final outputs (probabilities? then double
            softmax) and its weights (all equal? then initialization) are looked at.
        predict: optional, the function you evaluate with: checked for training mode.
        margin: accuracy within this of chance counts as "near chance".

    Returns findings: errors for what is wrong, notes for what is worth a look, with numbers.
    """
    m = _metrics(history)
    loss, acc = _get(m, "loss", "train_loss"), _get(m, "accuracy", "acc", "train_accuracy")
    val_acc = _get(m, "val_accuracy", "val_acc")
    chance, uniform = chance_accuracy(num_classes), math.log(num_classes)
    findings: list[Finding] = []
    epochs = max(len(loss), len(val_acc), len(acc))
    final_acc = val_acc[-1] if val_acc else (acc[-1] if acc else None)
    which = "validation" if val_acc else "training"
    near_chance = final_acc is not None and final_acc <= chance + margin

    if loss and not all(math.isfinite(v) for v in loss):
        bad = next(i for i, v in enumerate(loss) if not math.isfinite(v))
        findings.append(Finding("training", "learning rate", "error",
                                f"the training loss became {loss[bad]} in epoch {bad + 1}: the updates blew the weights "
                                f"up. Lower the learning rate (try 10× smaller) or clip gradients."))
    elif len(loss) >= 2 and loss[-1] > 1.5 * loss[0] and loss[-1] > uniform:
        findings.append(Finding("training", "learning rate", "error",
                                f"the training loss grew from {loss[0]:.3f} to {loss[-1]:.3f} over {len(loss)} epochs: "
                                f"the learning rate is too high. Try 10× smaller."))
    if loss and math.isfinite(loss[0]) and loss[0] > 2 * uniform:
        findings.append(Finding("training", "initial loss", "note",
                                f"the first epoch's training loss {loss[0]:.3f} is far above ln {num_classes} = "
                                f"{uniform:.3f}, the loss of a uniform guess: the network starts out very confident "
                                f"and wrong (outputs far too large), so the first steps are spent undoing that. Start "
                                f"the last layer's weights at zero or small, lower the learning rate, or clip the "
                                f"gradients (clip_grad_norm=...)."))
    if near_chance:
        findings.append(Finding("training", "accuracy", "error",
                                f"{which} accuracy {_pct(final_acc)} after {epochs} epoch{'s' * (epochs != 1)} is at "
                                f"chance level ({_pct(chance)} for {num_classes} classes): the model has learned "
                                f"(almost) nothing."))
        if loss and all(math.isfinite(v) for v in loss):
            change = (loss[-1] - loss[0]) / max(abs(loss[0]), 1e-12)
            if abs(loss[-1] - uniform) < 0.02 * uniform:
                findings.append(Finding("training", "loss", "note",
                                        f"the training loss is {loss[-1]:.3f}, the loss of a uniform guess "
                                        f"(ln {num_classes} = {uniform:.3f}): the outputs barely depend on the input. "
                                        f"Usual causes: a learning rate far too small, weights initialized to zero "
                                        f"or tiny (dead ReLUs), or inputs that are nearly constant."))
            if len(loss) >= 2 and abs(change) < 0.02:
                findings.append(Finding("training", "learning rate", "note",
                                        f"the training loss barely moved ({loss[0]:.3f} → {loss[-1]:.3f}, "
                                        f"{100 * change:+.1f}%): the learning rate may be too small (try 10× larger), "
                                        f"or the gradients vanish (check initialization and input scaling)."))
    floor = double_softmax_loss_floor(num_classes)
    if len(loss) >= 2 and all(math.isfinite(v) for v in loss) and loss[-1] < 0.98 * loss[0] \
            and floor - 0.02 <= min(loss) <= floor + 0.15 and model is None:
        findings.append(Finding("training", "double softmax", "note",
                                f"the training loss levels off at {min(loss):.3f}, just above {floor:.2f}, the lowest "
                                f"loss a double softmax allows with {num_classes} classes: if your model ends with a "
                                f"softmax and the loss applies one too, remove the model's (pass model= to check)."))
    if acc and val_acc and acc[-1] - val_acc[-1] > 0.15:
        findings.append(Finding("training", "overfitting", "note",
                                f"training accuracy {_pct(acc[-1])} is far above validation accuracy "
                                f"{_pct(val_acc[-1])}: the model memorizes the training images. More data, "
                                f"augmentation, dropout or fewer epochs help."))
    if inputs is not None:
        findings.extend(f for f in check_inputs(inputs) if f.severity != "ok")
    if model is not None:
        try:
            outputs = model_outputs(model)
        except Exception:  # noqa: BLE001 - a model without a declared input shape
            outputs = None
        if outputs is not None and looks_like_probabilities(outputs):
            findings.append(Finding("model", "double softmax", "error" if near_chance else "note",
                                    f"the model's outputs are probabilities (each row sums to "
                                    f"{outputs.sum(axis=1).mean():.3f}): it ends with a softmax. With a loss that "
                                    f"applies softmax itself that is the double softmax: the loss cannot go below "
                                    f"{double_softmax_loss_floor(num_classes):.2f}. Return logits instead."))
        findings.extend(f for f in check_initialization(model) if f.severity != "ok")
    if predict is not None and inputs is not None:
        findings.extend(f for f in check_eval_mode(predict, inputs, model=model) if f.severity != "ok")
    if not any(f.severity == "error" for f in findings):
        shown = f"{which} accuracy {_pct(final_acc)}" if final_acc is not None else "no accuracy recorded"
        findings.append(Finding("training", "summary", "ok",
                                f"nothing points at a bug: {shown} after {epochs} epochs "
                                f"(chance: {_pct(chance)})."))
    return findings


def assert_accuracy(history, threshold: float, num_classes: int, *, key: str = "val_accuracy",
                    **diagnose_kwargs) -> float:
    """Assert that the best ``key`` of a history reaches ``threshold``; if not, the message says why.

    Returns the best accuracy. The ``AssertionError`` gives the number, the threshold, and
    what :func:`diagnose_training` finds (pass ``inputs=``, ``model=``, ``predict=`` for more).
    """
    values = _get(_metrics(history), key)
    if not values:
        raise AssertionError(f"the history has no {key!r}: train with validation data so that it is recorded.")
    best = max(values)
    if best >= threshold:
        return best
    findings = diagnose_training(history, num_classes, **diagnose_kwargs)
    problems = [f.message for f in findings if f.severity == "error"] + \
        [f.message for f in findings if f.severity == "note"]
    reason = (" " + " ".join(problems[:3])) if problems else " Train longer or tune the learning rate."
    raise AssertionError(f"best {key.replace('_', ' ')} {_pct(best)} is below the required {_pct(threshold)}.{reason}")
