"""files: every write is atomic, cleans up after a failure, and gives new files the usual permissions."""

import json
import os
import stat

import pytest

from alexnet_lab.core import files


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_new_files_get_the_usual_permissions_not_mkstemps_private_ones(tmp_path, umask_022):
    written = [files.atomic_write_text(tmp_path / "a.txt", "héllo\n"),
               files.atomic_write_json(tmp_path / "b.json", {"x": [1, 2]}),
               files.atomic_write(tmp_path / "c.bin", lambda f: f.write(b"\x00\x01"), fsync=True)]
    assert [mode(p) for p in written] == [0o644] * 3
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    assert json.loads((tmp_path / "b.json").read_text()) == {"x": [1, 2]}
    assert (tmp_path / "b.json").read_text().endswith("\n")
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\x01"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = files.atomic_write_text(tmp_path / "results.json", "old")

    def half_then_fail(f):
        f.write(b"half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.atomic_write(path, half_then_fail)
    with pytest.raises(TypeError):
        files.atomic_write_json(path, {"not json": object()})
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_atomic_path_keeps_the_suffix_for_libraries_that_write_by_name(tmp_path, umask_022):
    target = tmp_path / "new" / "model.keras"
    with files.atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".keras" and tmp != target
        tmp.write_bytes(b"model")
        assert not target.exists(), "the target appears only when the block ends"
    assert target.read_bytes() == b"model" and mode(target) == 0o644

    with pytest.raises(KeyboardInterrupt):
        with files.atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"model"
    assert [p.name for p in target.parent.iterdir()] == ["model.keras"]


def test_checkpoints_and_figures_are_readable_by_others(tmp_path, umask_022):
    torch = pytest.importorskip("torch")
    from alexnet_lab.teaching import plots
    from alexnet_lab.torch import checkpoints as torch_checkpoints

    checkpoint = tmp_path / "ckpt.pt"
    torch_checkpoints.save_checkpoint(checkpoint, {"w": torch.ones(2)})
    import matplotlib.pyplot as plt

    fig = plt.figure()
    figure = plots.save_figure(fig, tmp_path / "fig.png")
    plt.close(fig)
    assert mode(checkpoint) == 0o644 and mode(tmp_path / "fig.png") == 0o644, figure
