"""Benchmarks of the inference runtime; results go to docs/benchmarks.md.

1. **Warm predict**: ``Predictor.predict`` against the sum of the raw onnxruntime
   ``session.run`` calls of the same two models (the predictor's own session objects),
   timed alternately in one process, under each out-of-distribution policy (``off``: no
   guard; ``flag``, the default, and ``fallback``: the input scored against the models'
   training reference). Targets: p50 ratio at most 1.3, p99 at most 1 ms. Also against the
   runs the predictor makes (each session with its I/O bound, ``BoundSession.run``): that
   ratio is the predictor's own overhead alone.
2. **Cold start**: a fresh process running ``mixai-infer predict`` on 30 s of stereo
   44.1 kHz audio with the bundle (median of several runs). Target: at most 1.5 s.
3. **Slim venv**: the wheel built and installed alone in a new venv; size of its
   site-packages and the heavy packages that must be absent. Target: at most 200 MB.

The models are the demo bundle's (``data/06_models/bundle``, after ``make demo``) or those
of ``--bundle``; without either, synthetic models with the exported TabularNet's graph
(standardisation, 128 → 64 GELU MLP, task head) and random weights, each with a training
reference of the export's shape. The input is the centre of the master_reg reference.

    .venv/bin/python benchmarks/bench_predict.py [--bundle DIR] [--skip-venv]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np
import onnx
import soundfile as sf
import yaml
from onnx import TensorProto, helper, numpy_helper

from mixai_inference import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from mixai_inference.bundle import (
    Manifest,
    ModelEntry,
    TaskEntry,
    read_manifest,
    sha256_bytes,
    write_bundle,
)
from mixai_inference.flags import Flags
from mixai_inference.metrics import MetricsSink
from mixai_inference.ood import Grid, InputReference
from mixai_inference.predictor import Predictor
from mixai_inference.tasks import MASTER_REG, task_names, task_spec, task_specs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from slim_boundary import canonical, forbidden_distributions  # noqa: E402


def tabular_net_model(task: str, version: str, input_dim: int, seed: int) -> bytes:
    """The graph the export writes for ``mixai_ml``'s TabularNet (hidden 128, 64; GELU),
    node for node as ``torch.onnx.export(dynamo=True, opset_version=18)`` emits it:
    standardisation, [Gemm, GELU as x·½(1 + erf(x/√2))] × 2, Gemm, then the task head."""
    rng = np.random.default_rng(seed)
    spec = task_spec(task)
    output_dim = len(spec.outputs)
    sizes = [input_dim, 128, 64, output_dim]
    inits = [
        numpy_helper.from_array(rng.standard_normal(input_dim).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.uniform(0.5, 2, input_dim).astype(np.float32), "scale"),
        numpy_helper.from_array(np.array(np.sqrt(2.0), np.float32), "sqrt2"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
    ]
    nodes = [
        helper.make_node("Sub", [spec.input_tensor, "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "scale"], ["h"]),
    ]
    current = "h"
    for k, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"W{k}"),
            numpy_helper.from_array(np.zeros(n_out, np.float32), f"B{k}"),
        ]
        nodes.append(helper.make_node("Gemm", [current, f"W{k}", f"B{k}"], [f"z{k}"], transB=1))
        current = f"z{k}"
        if k < len(sizes) - 2:
            nodes += [
                helper.make_node("Div", [current, "sqrt2"], [f"d{k}"]),
                helper.make_node("Erf", [f"d{k}"], [f"e{k}"]),
                helper.make_node("Add", [f"e{k}", "one"], [f"a{k}"]),
                helper.make_node("Mul", ["half", f"a{k}"], [f"m{k}"]),
                helper.make_node("Mul", [current, f"m{k}"], [f"g{k}"]),
            ]
            current = f"g{k}"
    if spec.kind == "regression":
        inits += [
            numpy_helper.from_array(rng.uniform(1, 5, output_dim).astype(np.float32), "tscale"),
            numpy_helper.from_array(rng.uniform(-5, 5, output_dim).astype(np.float32), "tmean"),
        ]
        nodes += [
            helper.make_node("Mul", [current, "tscale"], ["scaled"]),
            helper.make_node("Add", ["scaled", "tmean"], [spec.output_tensor]),
        ]
    elif spec.kind == "classification":
        nodes.append(helper.make_node("Softmax", [current], [spec.output_tensor], axis=-1))
    else:
        inits += [
            numpy_helper.from_array(np.array(1.1, np.float32), "slope"),
            numpy_helper.from_array(np.array(0.1, np.float32), "intercept"),
        ]
        nodes += [
            helper.make_node("Mul", [current, "slope"], ["calibrated"]),
            helper.make_node("Add", ["calibrated", "intercept"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], [spec.output_tensor]),
        ]
    graph = helper.make_graph(
        nodes,
        f"{task}_{version}",
        [helper.make_tensor_value_info(spec.input_tensor, TensorProto.FLOAT, ["batch", input_dim])],
        [
            helper.make_tensor_value_info(
                spec.output_tensor, TensorProto.FLOAT, ["batch", output_dim]
            )
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    helper.set_model_props(
        model,
        {
            "task": task,
            "version": version,
            "feature_schema_version": FEATURE_SCHEMA_VERSION,
            "output_names": json.dumps(list(spec.outputs)),
            "metrics": "{}",
        },
    )
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def reference_components() -> int:
    """The directions of the export's references (``conf/base/parameters_training.yml``)."""
    conf = yaml.safe_load((ROOT / "conf/base/parameters_training.yml").read_text())
    return sum(conf["training"]["reference"]["components"].values())


def synthetic_reference(names: tuple[str, ...], outputs: tuple[str, ...]) -> InputReference:
    """A training reference shaped like the export's: a ``(d, k)`` projection (the guard's
    cost does not depend on its values), deciles, an atom per tenth input. The mix tasks
    share it, as references fitted on the same rows do."""
    d, k, levels = len(names), reference_components(), np.arange(1, 10) / 10
    rng = np.random.default_rng(d)
    return InputReference(
        input_names=names,
        output_names=outputs,
        center=rng.standard_normal(d),
        projection=rng.standard_normal((d, k)) / np.sqrt(d * k),
        threshold=3.0,
        target_false_alarm_rate=0.01,
        input_grid=Grid(
            np.tile(levels, (d, 1)), np.array([[k, 1.0, 0.8, 1.0] for k in range(0, d, 10)])
        ),
        output_grid=Grid(np.tile(levels, (len(outputs), 1)), np.zeros((0, 4))),
    )


def synthetic_bundle(path: Path, ood_policy: str | None = None) -> Path:
    """One synthetic model per task, each with its training reference."""
    tasks, files = {}, {}
    for seed, spec in enumerate(task_specs()):
        task, dim = spec.name, len(spec.input_names())
        data = tabular_net_model(task, "bench", dim, seed)
        reference = synthetic_reference(spec.input_names(), spec.outputs).to_bytes()
        entry = ModelEntry(
            "bench", f"{task}-bench.onnx", sha256_bytes(data), "active", 100.0,
            FEATURE_SCHEMA_VERSION, spec.input_tensor, dim, spec.output_tensor, len(spec.outputs),
            reference=f"{task}-bench.reference.json", reference_sha256=sha256_bytes(reference),
        )  # fmt: skip
        tasks[task] = TaskEntry("bench", {"bench": entry}, ood_policy=ood_policy)
        files[entry.file] = data
        files[str(entry.reference)] = reference
    manifest = Manifest(FEATURE_SCHEMA_VERSION, tasks, flags={"enable_cpu_ml": True})
    return write_bundle(path, manifest, files)


def percentile_us(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q)) * 1e6


def typical_input(bundle: Path) -> np.ndarray:
    """The centre of the master_reg model's training reference (in distribution), or a
    random vector when the bundle has none."""
    entry = read_manifest(bundle).tasks[MASTER_REG].active
    if entry is not None and entry.reference is not None:
        reference = InputReference.from_bytes((bundle / entry.reference).read_bytes())
        return reference.center.astype(np.float32)
    return np.random.default_rng(0).standard_normal(len(FEATURE_NAMES)).astype(np.float32)


def bench_warm(bundle: Path, n: int, users: list[str | None], policy: str) -> dict[str, float]:
    predictor = Predictor.from_bundle(
        bundle, flags=Flags(enable_cpu_ml=True), metrics_sink=MetricsSink(), ood_policy=policy
    )
    manifest = read_manifest(bundle)
    raw, bound = [], []
    for task in task_names("mix"):
        entry = manifest.tasks[task].active
        assert entry is not None
        # the predictor's own session objects: the very same models and weights in memory
        bound.append(predictor._sessions._sessions[(task, entry.version)])
        raw.append((bound[-1].session, [entry.output_name], entry.input_name))
    x = typical_input(bundle)
    x2 = x[None, :]

    def raw_run() -> None:
        for session, outputs, input_name in raw:
            session.run(outputs, {input_name: x2})

    def raw_binding() -> None:  # the runs the predictor makes (see SessionCache)
        for session in bound:
            session.run(x2)

    for user in users[:200] * 5:  # warm up: caches, allocator, branch predictors
        predictor.predict(x, user_id=user)
        raw_run()
        raw_binding()
    t_predict, t_raw, t_binding = [], [], []
    clock = time.perf_counter
    for i in range(n):
        user = users[i % len(users)]
        t0 = clock()
        predictor.predict(x, user_id=user)
        t1 = clock()
        raw_run()
        t2 = clock()
        raw_binding()
        t3 = clock()
        t_predict.append(t1 - t0)
        t_raw.append(t2 - t1)
        t_binding.append(t3 - t2)
    result = predictor.predict(x)
    assert result.master_reg.source == result.preset_cls.source == "ml", result
    scored = result.answers[MASTER_REG].ood_score is not None
    assert scored == (policy != "off" and manifest.tasks[MASTER_REG].active.reference is not None)
    predictor.close()
    return {
        "predict_p50_us": percentile_us(t_predict, 50),
        "predict_p99_us": percentile_us(t_predict, 99),
        "raw_p50_us": percentile_us(t_raw, 50),
        "raw_p99_us": percentile_us(t_raw, 99),
        "bound_runs_p50_us": percentile_us(t_binding, 50),
        "ratio_p50": float(np.median(t_predict) / np.median(t_raw)),
        "ratio_p50_vs_bound_runs": float(np.median(t_predict) / np.median(t_binding)),
    }


def write_audio(path: Path, seconds: float = 30.0, sr: int = 44_100) -> Path:
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * sr)) / sr
    kick = np.exp(-30 * (t % 0.5)) * np.sin(2 * np.pi * 60 * t)
    mix = 0.4 * kick + 0.1 * np.sin(2 * np.pi * 440 * t) + 0.03 * rng.standard_normal(t.size)
    sf.write(path, np.stack([mix, 0.95 * mix], axis=1).astype(np.float32), sr, subtype="PCM_16")
    return path


def bench_cold(command: list[str], audio: Path, bundle: Path, runs: int) -> dict[str, float]:
    argv = [*command, "predict", str(audio), "--bundle", str(bundle), "--json"]
    # the demo bundle ships enable_cpu_ml false (docs/data_contracts.md §1): switch it on
    env = {**os.environ, "ENABLE_CPU_ML": "true"}
    subprocess.run(argv, check=True, capture_output=True, env=env)  # page cache and .pyc warm
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(argv, check=True, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t0)
    output = json.loads(done.stdout)
    assert output[MASTER_REG]["source"] == "ml", output
    return {"cold_median_s": statistics.median(times), "cold_max_s": max(times)}


def build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), "."],
        cwd=ROOT / "src" / "mixai_inference",
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("mixai_inference-*.whl")
    return wheel


def folder_mb(path: Path) -> float:
    return (
        sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6
    )


def bench_venv(work: Path) -> tuple[dict[str, object], Path]:
    wheel = build_wheel(work / "wheel")
    env = work / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheel)], check=True)
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    frozen = subprocess.run(
        [python, "-m", "pip", "list", "--format=json"], check=True, capture_output=True, text=True
    ).stdout
    installed = {canonical(p["name"]): p["version"] for p in json.loads(frozen)}
    pip_mb = sum(folder_mb(p) for p in site.glob("pip*"))
    return {
        "wheel": wheel.name,
        "wheel_kb": wheel.stat().st_size / 1e3,
        "site_packages_mb": folder_mb(site),
        "site_packages_without_pip_mb": folder_mb(site) - pip_mb,
        "installed": installed,
        "heavy_present": sorted(forbidden_distributions() & set(installed)),
    }, env / "bin" / "mixai-infer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, help="serve this bundle instead of synthetic MLPs")
    parser.add_argument("--n", type=int, default=20_000, help="warm predict calls")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--skip-venv", action="store_true", help="skip the slim venv part")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mixai-bench-"))
    try:
        demo = ROOT / "data" / "06_models" / "bundle"
        bundle = args.bundle or (demo if (demo / "manifest.json").exists() else None)
        bundle = bundle or synthetic_bundle(work / "bundle")
        machine = f"{platform.platform()}, {os.cpu_count()} CPUs"
        print(f"# {machine}, Python {platform.python_version()}; bundle {bundle}")
        report: dict[str, object] = {}
        for policy in ("off", "flag", "fallback"):  # off: no guard; flag: the default
            report[f"warm_anonymous_{policy}"] = bench_warm(bundle, args.n, [None], policy)
        users = [f"user-{i}" for i in range(1000)]
        report["warm_1000_users_flag"] = bench_warm(bundle, args.n, list(users), "flag")
        audio = write_audio(work / "mix_30s.wav")
        dev_cli = [str(Path(sys.executable).with_name("mixai-infer"))]
        report["cold_dev_venv"] = bench_cold(dev_cli, audio, bundle, args.cold_runs)
        if not args.skip_venv:
            slim, slim_cli = bench_venv(work)
            report["slim_venv"] = slim
            report["cold_slim_venv"] = bench_cold([str(slim_cli)], audio, bundle, args.cold_runs)
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
