"""torch precision and core hardware: device choice, mixed-precision and channels-last rules; seeding: one call
seeds everything. (Keras' precision rules: tests/test_keras_training.py.)"""

import random
import subprocess
import sys

import numpy as np
import pytest
import torch

import alexnet_lab
from alexnet_lab.core import hardware, seeding
from alexnet_lab.torch import precision as torch_precision


def test_cpu_bf16_support_is_read_from_the_flags():
    assert not hardware.cpu_has_fast_bf16(frozenset({"avx2", "fma"}))
    assert hardware.cpu_has_fast_bf16(frozenset({"avx2", "avx512_bf16"}))
    assert hardware.cpu_has_fast_bf16(frozenset({"amx_bf16", "amx_tile"}))
    assert isinstance(hardware.cpu_flags(), frozenset)


def test_cpu_vector_units_name_the_widest():
    assert hardware.cpu_vector_units(frozenset({"avx2", "fma"})) == "AVX2"
    assert hardware.cpu_vector_units(frozenset({"avx2", "avx512f"})) == "AVX-512"
    assert hardware.cpu_vector_units(frozenset({"avx2", "avx512f", "avx512_bf16"})) == "AVX-512 with BF16"
    assert hardware.cpu_vector_units(frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})) == "AMX"
    assert hardware.cpu_vector_units(frozenset({"sse2"})) == ""


@pytest.fixture
def fake_cpu(monkeypatch):
    def set_flags(*flags):
        monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    return set_flags


@pytest.fixture
def fake_gpu(monkeypatch):
    def set_capability(capability):
        monkeypatch.setattr(torch_precision, "cuda_capability", lambda device: capability)
    return set_capability


def test_auto_mixed_precision_on_cpus_only_where_bf16_is_in_hardware(fake_cpu):
    cpu = torch.device("cpu")
    fake_cpu("avx2")
    choice = torch_precision.choose_precision(cpu, "auto")
    assert choice.dtype == "float32" and not choice.autocast and "slower" in choice.reason
    assert torch_precision.choose_precision(cpu, True).dtype == "bfloat16"  # asked for: done, with a warning in the reason
    assert "slower" in torch_precision.choose_precision(cpu, "bf16").reason
    fake_cpu("avx2", "amx_bf16")
    choice = torch_precision.choose_precision(cpu, "auto")
    assert choice.dtype == "bfloat16" and choice.autocast and not choice.grad_scaling
    assert torch_precision.choose_precision(cpu, False).dtype == "float32"  # switched off


def test_the_environment_variable_overrides_auto_in_both_frameworks(fake_cpu, monkeypatch):
    keras_precision = pytest.importorskip("alexnet_lab.keras.precision")
    cpu = torch.device("cpu")
    fake_cpu("avx2", "amx_bf16")
    monkeypatch.setenv(hardware.PRECISION_ENV_VAR, "off")
    choice = torch_precision.choose_precision(cpu, "auto")
    assert choice.dtype == "float32" and hardware.PRECISION_ENV_VAR in choice.reason
    assert keras_precision.choose_precision(None, "auto")[0] == "float32"
    assert torch_precision.choose_precision(cpu, "bf16").dtype == "bfloat16"  # an explicit choice wins
    fake_cpu("avx2")
    monkeypatch.setenv(hardware.PRECISION_ENV_VAR, "bf16")
    assert torch_precision.choose_precision(cpu, "auto").dtype == "bfloat16"
    assert keras_precision.choose_precision(None, "auto")[0] == "mixed_bfloat16"
    monkeypatch.setenv(hardware.PRECISION_ENV_VAR, "half")
    with pytest.raises(ValueError, match="Received: 'half'"):
        torch_precision.choose_precision(cpu, "auto")


@pytest.mark.parametrize("capability, dtype, scaling", [((9, 0), "bfloat16", False), ((8, 6), "bfloat16", False),
                                                        ((7, 5), "float16", True), ((6, 1), "float32", False)])
def test_auto_mixed_precision_on_gpus_by_compute_capability(fake_gpu, capability, dtype, scaling):
    fake_gpu(capability)
    choice = torch_precision.choose_precision(torch.device("cuda"), "auto")
    assert (choice.dtype, choice.grad_scaling) == (dtype, scaling)
    assert torch_precision.choose_precision(torch.device("cuda"), False).dtype == "float32"
    fp16 = torch_precision.choose_precision(torch.device("cuda"), "fp16")
    assert fp16.dtype == "float16" and fp16.grad_scaling and fp16.torch_dtype is torch.float16


def test_bf16_on_a_gpu_without_it_and_unknown_modes_are_refused(fake_gpu):
    fake_gpu((7, 0))
    with pytest.raises(ValueError, match="no bfloat16"):
        torch_precision.choose_precision(torch.device("cuda"), "bf16")
    for mode in ("half", 1, None):
        with pytest.raises(ValueError, match="mixed_precision must be one of"):
            torch_precision.choose_precision(torch.device("cpu"), mode)


def test_channels_last_rules(fake_gpu):
    cpu = torch.device("cpu")
    assert torch_precision.choose_channels_last(cpu, "auto")[0] is False
    assert torch_precision.choose_channels_last(cpu, True) == (True, "asked for")
    assert torch_precision.choose_channels_last(cpu, False) == (False, "switched off")
    fake_gpu((8, 0))
    bf16 = torch_precision.Precision("bfloat16", False, "test")
    fp32 = torch_precision.Precision("float32", False, "test")
    assert torch_precision.choose_channels_last(torch.device("cuda"), "auto", bf16)[0] is True
    assert torch_precision.choose_channels_last(torch.device("cuda"), "auto", fp32)[0] is False
    assert torch_precision.choose_channels_last(torch.device("cuda"), False, bf16)[0] is False
    with pytest.raises(ValueError, match="channels_last must be"):
        torch_precision.choose_channels_last(cpu, "yes")


def test_torch_device_picks_and_announces_once(capsys, monkeypatch):
    monkeypatch.setattr(torch_precision, "_announced", set())
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch_precision._mps_available() else "cpu"
    assert torch_precision.torch_device().type == expected
    assert torch_precision.torch_device().type == expected
    out = capsys.readouterr().out
    assert out.count("alexnet-lab: training on") == 1 and expected in out
    assert torch_precision.torch_device("cpu", announce=False) == torch.device("cpu")
    assert capsys.readouterr().out == ""


def test_the_device_defaults_to_the_one_torch_device_picks(monkeypatch):
    monkeypatch.setattr(torch_precision, "_announced", set())
    picked = torch_precision.torch_device(announce=False)
    assert torch_precision.describe_device() == torch_precision.describe_device(picked)
    assert torch_precision.cuda_capability() == torch_precision.cuda_capability(picked)
    assert torch_precision.choose_precision() == torch_precision.choose_precision(picked, "auto")
    assert torch_precision.choose_compile() == torch_precision.choose_compile(picked, "auto")
    assert torch_precision.choose_channels_last() == torch_precision.choose_channels_last(picked, "auto")
    assert torch_precision.describe_device("cpu").startswith("cpu (")


def test_unavailable_or_unknown_devices_are_refused():
    with pytest.raises(ValueError, match="Unknown device"):
        torch_precision.torch_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            torch_precision.torch_device("cuda")


def test_seed_everything_repeats_python_numpy_and_torch():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    assert alexnet_lab.seed_everything(11, frameworks=("torch",)) == ["python", "numpy", "torch"]
    first = draw()
    alexnet_lab.seed_everything(11, frameworks=("torch",))
    assert draw() == first
    alexnet_lab.seed_everything(12, frameworks=("torch",))
    twelve = draw()
    assert twelve != first
    assert seeding.current_seed() == 12
    assert torch.are_deterministic_algorithms_enabled()
    alexnet_lab.seed_everything(12, deterministic=False, frameworks=("torch",))  # what notebook.start does
    assert draw() == twelve, "the same seed without deterministic kernels draws the same numbers"
    assert not torch.are_deterministic_algorithms_enabled(), "deterministic=False should switch it off again"
    alexnet_lab.seed_everything(12, frameworks=("torch",))


def test_seed_everything_refuses_bad_arguments():
    for seed in (-1, 2**32, 1.5, "0", True):
        with pytest.raises(ValueError, match="seed must be an integer"):
            alexnet_lab.seed_everything(seed)
    with pytest.raises(ValueError, match="Unknown framework"):
        alexnet_lab.seed_everything(0, frameworks=("jax",))


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_alexnet_lab_stays_free_of_frameworks_and_seeding_imports_only_what_it_is_asked_to():
    out = _run("import sys, alexnet_lab, alexnet_lab.torch.precision; "
               "print('torch' in sys.modules, 'tensorflow' in sys.modules); "
               "alexnet_lab.seed_everything(0, frameworks=('torch',)); "
               "print('torch' in sys.modules, 'tensorflow' in sys.modules)")
    assert out.split() == ["False", "False", "True", "False"]


def test_seed_everything_seeds_tensorflow_too():
    out = _run("import alexnet_lab; print(alexnet_lab.seed_everything(3)); import tensorflow as tf; "
               "a = float(tf.random.uniform(())); alexnet_lab.seed_everything(3); "
               "print(a == float(tf.random.uniform(())))")
    assert out.split("\n")[0] == "['python', 'numpy', 'torch', 'tensorflow']" and out.split()[-1] == "True"
