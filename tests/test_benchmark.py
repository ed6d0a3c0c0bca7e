"""``alexnet-lab bench``: FLOP arithmetic, peak estimates, CPU facts, timing, derived figures, the table, the JSON
file (alexnet_lab.core.benchmark, .core.measure, .core.hardware), the PyTorch step (alexnet_lab.torch.benchmark) and
the command (alexnet_lab.cli.bench).

No test here asserts a speed: speeds depend on the machine and its load. The end-to-end tests
run a tiny configuration (batch 2, one timed step) and check the records' format and sanity.
"""

from __future__ import annotations

import json
import math
import os

import pytest

from alexnet_lab.cli import bench
from alexnet_lab.cli import main as cli
from alexnet_lab.core import architecture, benchmark, hardware, measure

# The classic preset's multiply-accumulates, layer by layer, worked out by hand (output H·W·C × kernel volume).
CLASSIC_MACS = (55 * 55 * 96 * 11 * 11 * 3        # conv1
                + 27 * 27 * 256 * 5 * 5 * 96      # conv2
                + 13 * 13 * 384 * 3 * 3 * 256     # conv3
                + 13 * 13 * 384 * 3 * 3 * 384     # conv4
                + 13 * 13 * 256 * 3 * 3 * 384     # conv5
                + 9216 * 4096 + 4096 * 4096 + 4096 * 1000)  # fc6, fc7, fc8


def test_flops_per_image_are_two_and_six_flops_per_mac():
    train, infer = benchmark.flops_per_image("classic")
    assert CLASSIC_MACS == 1_135_256_096
    assert infer == 2 * CLASSIC_MACS and train == 6 * CLASSIC_MACS
    train, infer = benchmark.flops_per_image("cifar10")
    assert infer == 2 * architecture.totals(architecture.layer_table("cifar10"))["macs"] and train == 3 * infer
    assert infer < benchmark.flops_per_image("classic")[1] / 5  # 32×32 images: far less work than 227×227


@pytest.mark.parametrize("flags, per_cycle, isa", [
    ({"avx", "avx2", "fma"}, 32, "AVX2"),           # this course's CI machine: AMD EPYC, AVX2 + FMA
    ({"avx", "avx2", "fma", "avx512f"}, 64, "AVX-512"),
    ({"avx"}, 16, "AVX"),
    (set(), 8, "SSE"),
])
def test_cpu_peak_is_cores_times_clock_times_flops_per_cycle(flags, per_cycle, isa):
    peak, how = benchmark.cpu_peak_flops(2, 2445.428, flags)
    assert peak == pytest.approx(2 * 2445.428e6 * per_cycle)
    assert isa in how and f"{per_cycle} float32 FLOP/cycle" in how and "upper bound" in how


def test_cpu_clock_is_read_from_cpuinfo_text():
    text = "processor\t: 0\ncpu MHz\t\t: 2445.428\nflags\t: fpu avx2\nprocessor\t: 1\ncpu MHz\t\t: 2600.000\n"
    assert hardware.cpu_mhz(hardware.parse_cpuinfo(text)) == 2600.0
    assert hardware.cpu_mhz(hardware.parse_cpuinfo("processor\t: 0\n")) is None
    mhz, source = hardware.cpu_clock_mhz()
    assert mhz is None or mhz > 100 and source
    assert 1 <= hardware.cpu_cores() <= 4096


def test_cpu_facts_come_from_one_parse_of_cpuinfo():
    text = ("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nsiblings\t: 4\ncpu cores\t: 2\nflags\t\t: fpu avx2 fma\n\n"
            "processor\t: 1\nmodel name\t: AMD EPYC 7B13\nsiblings\t: 4\ncpu cores\t: 2\nflags\t\t: fpu avx2 fma\n")
    info = hardware.parse_cpuinfo(text)
    assert info["processor"] == ("0", "1")
    assert hardware.cpu_flags(info) == frozenset({"fpu", "avx2", "fma"}) and hardware.cpu_name(info) == "AMD EPYC 7B13"
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert hardware.cpu_cores(info) == max(1, logical // 2)            # 2 hardware threads per core
    assert hardware.cpu_cores({}) == logical                           # threads per core unknown: 1
    assert hardware.cpu_flags({}) == frozenset() and hardware.cpu_name({})  # no /proc/cpuinfo: unknown, a name still
    assert hardware.cpu_flags() == hardware.cpu_flags(hardware.cpuinfo())


def test_time_steps_times_each_step_after_the_warmup_and_syncs_inside_the_clock():
    calls = []
    timing = measure.time_steps(lambda: calls.append("step"), warmup=2, repetitions=3,
                                sync=lambda: calls.append("sync"))
    assert calls == ["step", "step", "sync"] + ["step", "sync"] * 3
    assert len(timing["step_s"]) == len(timing["cpu_s"]) == 3 and timing["warmup_s"] >= 0
    assert all(t >= 0 for t in timing["step_s"] + timing["cpu_s"])
    rates = measure.step_rates("train", {"warmup_s": 1.23456, "step_s": [0.5, 0.25, 1.0], "cpu_s": [1.0, 0.5, 2.0]},
                               batch_size=10)
    assert rates == {"train_images_per_s": 10 / 0.5, "train_cpu_s_per_image": 0.1,
                     "train_step_s": [0.5, 0.25, 1.0], "train_warmup_s": 1.235}
    assert measure.peak_rss_mib() is None or measure.peak_rss_mib() >= (measure.rss_mib() or 0) > 0


def test_time_batches_does_not_count_the_first_batch_of_a_pass():
    made = []

    def make():
        made.append(1)
        return [(None, [0] * 4)] * 5      # 5 batches of 4: the first is start-up

    rate, counted = measure.time_batches(make, repetitions=2)
    assert counted == 16 and rate > 0 and len(made) == 2


def test_gpu_peaks_by_name_and_precision():
    assert benchmark.gpu_peak_flops("NVIDIA H100 80GB HBM3", "bfloat16")[0] == 989e12
    assert benchmark.gpu_peak_flops("NVIDIA H100 80GB HBM3", "float32")[0] == 67e12
    assert benchmark.gpu_peak_flops("NVIDIA H100 PCIe", "bfloat16")[0] == 756e12  # not the SXM figure
    assert benchmark.gpu_peak_flops("NVIDIA H200", "bfloat16")[0] == 989e12
    assert benchmark.gpu_peak_flops("NVIDIA L40S", "float16")[0] == 362e12      # not the L4's
    peak, how = benchmark.gpu_peak_flops("Some Future GPU", "bfloat16")
    assert peak is None and "unknown" in how


def _record(path, variant, train, infer, *, preset="cifar10", framework="torch", **extra):
    return {"framework": framework, "preset": preset, "path": path, "variant": variant, "image_size": 32,
            "train_images_per_s": train, "infer_images_per_s": infer, "train_cpu_s_per_image": 0.01,
            "peak_flop_per_s": 100e9, "device_type": "cpu", "batch_size": 32, "peak_rss_mib": 700.0,
            "device": "cpu (test, 2 threads)",
            "threads": 2, "framework_version": "x", "peak_estimate": "test peak", "load_average_start": 1.5,
            "load_average_end": 2.5, "quick": True, "repetitions": 3, "warmup_steps": 1, "cpu_cores": 2, **extra}


def test_derived_figures_use_the_baseline_of_the_same_framework_and_preset():
    records = [_record("baseline", "float32", 10.0, 40.0, pipeline_images_per_s=500.0),
               _record("default", "bfloat16", 25.0, 60.0, pipeline_images_per_s=500.0, train_cpu_s_per_image=0.004),
               _record("baseline", "float32", 2.0, 8.0, preset="classic"),
               _record("default", "float32", 4.0, 8.0, framework="keras"),   # no Keras baseline in this run
               {"framework": "torch", "preset": "cifar10", "path": "candidate", "variant": "compile",
                "image_size": 32, "error": "exit status 1: boom"}]
    benchmark.add_derived(records)
    base, default, classic, keras, failed = records
    train_flops, infer_flops = benchmark.flops_per_image("cifar10")
    assert base["train_speedup"] == 1.0 and default["train_speedup"] == 2.5 and default["infer_speedup"] == 1.5
    assert default["train_flop_per_s"] == 25.0 * train_flops and default["infer_flop_per_s"] == 60.0 * infer_flops
    assert default["train_peak_fraction"] == pytest.approx(25.0 * train_flops / 100e9)
    assert default["pipeline_over_train"] == 20.0 and "pipeline_over_train" not in classic
    # CPU time: 0.004 s per image (baseline: 0.01) on 2 cores of 50 GFLOP/s each.
    assert default["train_cpu_speedup"] == pytest.approx(2.5) and base["train_cpu_speedup"] == 1.0
    assert default["train_flop_per_cpu_s"] == pytest.approx(train_flops / 0.004)
    assert default["train_core_peak_fraction"] == pytest.approx(train_flops / 0.004 / 50e9)
    assert classic["train_flop_per_s"] == 2.0 * benchmark.flops_per_image("classic")[0]
    assert keras["train_speedup"] is None                  # never a ratio across frameworks or runs
    assert set(failed) == {"framework", "preset", "path", "variant", "image_size", "error"}  # left alone


def test_table_shows_every_record_the_ratios_and_the_load():
    records = [_record("baseline", "float32", 10.0, 40.0), _record("default", "bfloat16", 25.0, 60.0),
               {"framework": "keras", "preset": "cifar10", "path": "default", "variant": "?", "image_size": 32,
                "error": "did not finish within 5 s"}]
    benchmark.add_derived(records)
    table = benchmark.format_table(records)
    lines = table.splitlines()
    assert "train img/s" in lines[0] and "% peak" in lines[0]
    row = next(line for line in lines if " default " in line and "bfloat16" in line)
    assert "25.0" in row and "2.50" in row and "1.50" in row
    assert "FAILED: did not finish within 5 s" in table
    assert "load average while measuring: 1.5 to 2.5 on 2 core(s)" in table and "peak: test peak" in table


def test_json_is_written_atomically(tmp_path):
    path = tmp_path / "bench.json"
    records = [_record("baseline", "float32", 10.0, 40.0)]
    benchmark.write_json(records, path)
    assert json.loads(path.read_text()) == records
    with pytest.raises(TypeError):
        benchmark.write_json([{"not json": object()}], path)
    assert json.loads(path.read_text()) == records            # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]  # and no temporary file is left


def test_bad_arguments_are_refused_before_anything_runs(tmp_path, capsys):
    missing = tmp_path / "no such folder" / "bench.json"
    assert cli.main(["bench", "--json", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    for kwargs, word in [(dict(frameworks=["jax"]), "framework"), (dict(frameworks=[]), "framework"),
                         (dict(presets=["paper"]), "preset"), (dict(batch_size=0), "batch_size"),
                         (dict(repetitions=0), "repetitions"), (dict(warmup=-1), "warmup"),
                         (dict(threads=1.5), "threads")]:
        with pytest.raises(ValueError, match=word):
            bench.run(**kwargs)
    with pytest.raises(SystemExit):
        cli.main(["bench", "--presets", "nosuch"])
    assert "bench" in cli.build_parser().format_help()


def test_candidates_are_chosen_by_name_per_framework():
    paths = lambda cases: [(path, variant) for path, variant, _ in cases]  # noqa: E731
    assert paths(benchmark.cases("torch", False)) == [("baseline", "float32"), ("default", "default")]
    assert paths(benchmark.cases("torch", ["compile", "xla"]))[2:] == [("candidate", "compile")]  # xla: Keras only
    assert [v for _, v, _ in benchmark.cases("keras", True)[2:]] == list(benchmark.CANDIDATES["keras"])
    assert benchmark.cases("torch", ["compile"])[2][2] == {"compile": True}
    parser = cli.build_parser()
    for argv, expected in [([], False), (["--candidates"], True), (["--candidates", "xla", "bf16"], ["xla", "bf16"])]:
        args = parser.parse_args(["bench", *argv])
        assert bench._candidates_from_args(args.candidates) == expected
    with pytest.raises(ValueError, match="candidate"):
        bench.run(candidates=["turbo"])


def test_a_failing_case_becomes_an_error_record():
    record = bench._run_child({"kind": "nothing", "framework": "torch"})
    assert "Unknown case" in record["error"] and "exit status 1" in record["error"]
    record = bench._run_child({"kind": "pipeline", "framework": "jax"})
    assert "Unknown case" in record["error"] and "'jax'" in record["error"]


def test_the_torch_benchmark_times_the_course_training_step(monkeypatch):
    """The benchmark's PyTorch training step is torch.training.train_step, with its SGD and, for float16 only,
    a gradient scaler; autocast only when the precision asks for it."""
    torch = pytest.importorskip("torch")
    from alexnet_lab.torch import benchmark as torch_benchmark
    from alexnet_lab.torch import precision as torch_precision
    from alexnet_lab.torch import training as torch_training

    calls = []
    real = torch_training.train_step

    def spy(model, x, y, optimizer, **kwargs):
        calls.append((optimizer, kwargs))
        return real(model, x, y, optimizer, **kwargs)

    monkeypatch.setattr(torch_training, "train_step", spy)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 0])
    before = model[1].weight.detach().clone()
    train_step, infer_step = torch_benchmark.steps(model, x, y)
    train_step()
    optimizer, kwargs = calls[-1]
    assert kwargs == {"precision": None, "scaler": None}
    assert optimizer.defaults["lr"] == 1e-3 and optimizer.defaults["momentum"] == 0.9
    assert optimizer.defaults["weight_decay"] == 5e-4 and isinstance(optimizer, torch.optim.SGD)
    assert not torch.equal(model[1].weight, before), "the step updated the weights"
    infer_step()
    bf16 = torch_precision.choose_precision("cpu", "bf16")
    torch_benchmark.steps(model, x, y, precision=bf16)[0]()
    assert calls[-1][1] == {"precision": bf16, "scaler": None}         # bfloat16: no loss scaling
    fp16 = torch_precision.Precision(dtype="float16", grad_scaling=True, reason="test")
    torch_benchmark.steps(model, x, y, precision=fp16)[0]()
    assert isinstance(calls[-1][1]["scaler"], torch.amp.GradScaler)    # float16: loss scaling


def test_compile_is_off_by_default_and_can_be_asked_for():
    torch = pytest.importorskip("torch")
    from alexnet_lab.torch import precision as torch_precision

    on, reason = torch_precision.choose_compile(torch.device("cpu"), "auto")
    assert on is False and "compile=True" in reason
    assert torch_precision.choose_compile("cpu", True) == (True, "asked for")
    assert torch_precision.choose_compile("cpu", False)[0] is False
    with pytest.raises(ValueError, match="compile"):
        torch_precision.choose_compile("cpu", "yes")


def test_keras_xla_auto_follows_the_measurements_and_defers_to_a_distribution_strategy():
    tf = pytest.importorskip("tensorflow")
    from tensorflow.python.framework import config  # the switch seed_everything(seed) turns on, and its getter

    from alexnet_lab.keras import precision as keras_precision

    was_deterministic = config.is_op_determinism_enabled()
    config.disable_op_determinism()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(keras_precision, "_gpus", lambda: [])
            patch.setattr(keras_precision.hardware, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
            assert keras_precision.choose_compile(None, "auto")[0] is True, "measured faster on an AVX2 CPU"
            patch.setattr(keras_precision.hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
            on, reason = keras_precision.choose_compile(None, "auto")
            assert on is False and "AVX-512" in reason, "measured slower than oneDNN on an AVX-512 CPU"
            patch.setattr(keras_precision, "_gpus", lambda: ["/gpu:0"])
            assert keras_precision.choose_compile(None, "auto")[0] is True, "Keras' own default on GPUs"
        assert keras_precision.choose_compile(None, False) == (False, "switched off")
        with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
            assert keras_precision.choose_compile(None, "auto")[0] == "auto"   # Keras decides under tf.distribute
        config.enable_op_determinism()  # Keras refuses XLA then: say so instead of letting Keras warn
        on, reason = keras_precision.choose_compile(None, "auto")
        assert on is False and "deterministic=False" in reason
    finally:
        (config.enable_op_determinism if was_deterministic else config.disable_op_determinism)()
    with pytest.raises(ValueError, match="compile"):
        keras_precision.choose_compile(None, "xla")


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_bench_command_end_to_end_with_a_tiny_configuration(framework, tmp_path, capsys):
    pytest.importorskip("torch" if framework == "torch" else "tensorflow")
    path = tmp_path / "bench.json"
    args = ["bench", "--frameworks", framework, "--presets", "cifar10", "--batch-size", "2", "--warmup", "0",
            "--repetitions", "1", "--quick", "--json", str(path)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    records = json.loads(path.read_text())
    assert [r["path"] for r in records] == ["baseline", "default"]
    for r in records:
        assert r["framework"] == framework and r["preset"] == "cifar10" and r["batch_size"] == 2
        assert r["train_images_per_s"] > 0 and r["infer_images_per_s"] > 0 and len(r["train_step_s"]) == 1
        assert r["train_flop_per_s"] == pytest.approx(r["train_images_per_s"] * 6 * 182_220_800)
        assert r["peak_rss_mib"] > r["rss_after_import_mib"] > 0
        assert r["pipeline_images_per_s"] > 0 and r["pipeline_over_train"] > 0
        assert r["run_load_average_start"] is not None and r["load_average_start"] is not None
        assert r["peak_flop_per_s"] is None or (math.isfinite(r["peak_flop_per_s"]) and "FLOP" in r["peak_estimate"])
    baseline, default = records
    assert baseline["precision"] == "float32" and not baseline["compiled"] and baseline["train_speedup"] == 1.0
    # The default path is what fit does here: no torch.compile (torch_precision.choose_compile); XLA for Keras on a CPU
    # without AVX-512 (keras_precision.choose_compile: measured slower than oneDNN on an AVX-512 CPU).
    from alexnet_lab.core import hardware

    xla = framework == "keras" and "avx512f" not in hardware.cpu_flags()
    assert default["compiler"] == ("XLA" if xla else None)
    assert default["train_speedup"] == pytest.approx(default["train_images_per_s"] / baseline["train_images_per_s"])
    assert f"wrote 2 records to {path}" in out and "baseline" in out and "x base" in out


def test_bf16_accuracy_script_trains_both_precisions_from_the_same_start(tmp_path, capsys):
    """benchmarks/bf16_accuracy.py on a tiny configuration: one record per framework and precision, same data."""
    import importlib.util
    from pathlib import Path

    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bf16_accuracy.py"
    spec = importlib.util.spec_from_file_location("bf16_accuracy", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "bf16.json"
    assert script.main(["--frameworks", "torch", "keras", "--per-class", "2", "--test-per-class", "2",
                        "--epochs", "1", "--batch-size", "10", "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [(r["framework"], r["precision"]) for r in records] == [
        ("torch", "float32"), ("torch", "bfloat16"), ("keras", "float32"), ("keras", "bfloat16")]
    assert all(0 <= r["test_accuracy"] <= 1 and r["train_images"] == 20 and r["test_images"] == 20 for r in records)
    assert records[1]["precision_used"].startswith("bfloat16") and records[0]["precision_used"].startswith("float32")
    assert "mixed_bfloat16" in records[3]["precision_used"] and records[2]["precision_used"] == "float32"
    text = capsys.readouterr().out
    assert "torch: float32" in text and "keras: float32" in text and "per seed" in text
    import keras

    assert keras.mixed_precision.global_policy().name == "float32", "the script restores Keras' policy"
