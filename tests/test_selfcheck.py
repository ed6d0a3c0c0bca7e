"""selfcheck.check: right, wrong with a known mistake (and why), wrong otherwise, not answered yet."""

from alexnet_lab.teaching import selfcheck

CONV3 = (3 * 3 * 256 + 1) * 384
MISTAKES = {3 * 3 * 256 * 384: "that is the weights alone: each filter has a bias too"}


def test_a_right_answer_is_confirmed(capsys):
    assert selfcheck.check(CONV3, CONV3, what="conv3's parameters", mistakes=MISTAKES) is True
    assert capsys.readouterr().out == "✓ conv3's parameters: 885,120 is right.\n"


def test_a_known_mistake_is_named_with_its_reason(capsys):
    assert selfcheck.check(3 * 3 * 256 * 384, CONV3, what="conv3's parameters", mistakes=MISTAKES) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ conv3's parameters: 884,736 is not right: ") and "bias" in out
    assert "885,120" not in out  # the check says why, it does not give the answer away


def test_another_wrong_answer_gets_the_hint(capsys):
    assert selfcheck.check(7, CONV3, what="conv3's parameters", mistakes=MISTAKES, hint="Use (k·k·C_in + 1)·C_out.") \
        is False
    assert capsys.readouterr().out == "✗ conv3's parameters: 7 is not right. Use (k·k·C_in + 1)·C_out.\n"


def test_an_unanswered_exercise_is_not_an_error(capsys):
    assert selfcheck.check(None, CONV3, what="conv3's parameters") is None
    assert "not answered yet" in capsys.readouterr().out


def test_shapes_and_floats(capsys):
    assert selfcheck.check((13, 13, 384), (13, 13, 384), what="shape") is True
    assert selfcheck.check([13, 13, 384], (13, 13, 384), what="shape") is True
    assert selfcheck.check((11, 11, 384), (13, 13, 384), what="shape",
                           mistakes={(11, 11, 384): "no padding"}) is False
    assert selfcheck.check(713.9 + 1e-7, 713.9, what="MiB") is True
    assert selfcheck.check(714.0, 713.9, what="MiB") is False
    assert selfcheck.check("abc", 1.0, what="x") is False
    out = capsys.readouterr().out
    assert "✓ shape: 13×13×384 is right." in out and "✗ shape: 11×11×384 is not right: no padding" in out
