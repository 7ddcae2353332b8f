"""The scripts users run, each in its own process: demo, run_ope (variants, --set, resume,
refusal to mix runs), bench_compile."""
import json

import numpy as np
import pytest

from jaxtrack.data.synthetic import make_dataset, write_got10k_layout


def test_demo_prints_metrics_and_draws_boxes(tmp_path, run_script):
    out = run_script("demo", "--frames", "30", "--out", tmp_path, "--no-cache").stdout
    assert "success AUC" in out and "FPS" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (tmp_path / summary["sequence"]).with_suffix(".png").stat().st_size > 1000
    assert 0.0 <= summary["auc"] <= 1.0 and summary["fps"] > 0
    assert summary["compilations"] == 2


@pytest.fixture(scope="module")
def got10k_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_got10k_layout(make_dataset(11, 3, num_frames=12), str(root), split="val")
    return root


def _ope_args(root, results, *extra):
    # the tiny SiamFC AlexNet has no trained weights: a fixed random network, seeded
    return ["--tracker", "siamfc", "--variant", "tiny", "--allow-random", "--dataset", "got10k",
            "--root", root, "--split", "val", "--results", results, "--no-progress", "--no-cache",
            *extra]


def test_run_ope_names_the_folder_by_config_resumes_and_refuses_other_runs(tmp_path, got10k_root, run_script):
    results = tmp_path / "R"
    out = run_script("run_ope", *_ope_args(got10k_root, results)).stdout
    (folder,) = [p for p in results.iterdir() if p.is_dir()]
    assert folder.name.startswith("siamfc_alexnet_tiny_")
    run = json.loads((folder / "run.json").read_text())
    assert run["variant"] == "tiny" and run["config"]["instance_size"] == 191 and run["seed"] == 0
    files = sorted(p.name for p in folder.glob("*.txt"))
    assert len(files) == 3 and "compilations this run 2" in out
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics["per_sequence"]) == {f[:-4] for f in files}
    assert (folder / "metrics.md").exists() and (folder / "success.png").exists()
    # resume: nothing is recomputed, so nothing compiles and no file changes
    stamp = {f: (folder / f).stat().st_mtime_ns for f in files}
    out = run_script("run_ope", *_ope_args(got10k_root, results)).stdout
    assert "compilations this run 0" in out
    assert {f: (folder / f).stat().st_mtime_ns for f in files} == stamp
    # another setting is refused in a folder that holds another run's results (unit tests of
    # the folder names and identity: tests/test_ope.py)
    first = sorted(metrics["per_sequence"])[0]
    proc = run_script("run_ope", *_ope_args(got10k_root, results, "--set", "window_influence=0.3",
                                            "--sequences", first, "--name", folder.name), check=False)
    assert proc.returncode != 0 and "holds results of another run" in proc.stderr
    assert "config.window_influence: recorded 0.176, now 0.3" in proc.stderr
    assert {f: (folder / f).stat().st_mtime_ns for f in files} == stamp


def test_run_ope_rejects_a_bad_set(tmp_path, got10k_root, run_script):
    proc = run_script("run_ope", *_ope_args(got10k_root, tmp_path, "--set", "learning_rate=0.1"),
                      check=False)
    assert proc.returncode != 0 and "learning_rate" in proc.stderr and "unknown config field" in proc.stderr


# the benchmark scripts' own tests take 30-50 s each on 2 cores (compilations in fresh
# processes, warm starts): they run with -m slow, beside the benchmarks themselves
@pytest.mark.slow
def test_bench_compile_reports_compile_frame_times_and_warm_starts(tmp_path, run_script):
    """Compile and frame times; the warm starts: two fresh processes each way (the tracker's
    code, an export of it), the second of each pair on the cache the first filled."""
    out = tmp_path / "b.json"
    proc = run_script("bench_compile", "--trackers", "siamfc:alexnet", "--frames", "2", "--out", out)
    row = json.loads(out.read_text())["rows"][0]
    assert row["compile_init_s"] > 0 and row["compile_track_step_s"] > 0 and row["fps"] > 0
    for k in ("warm_first_init_and_step_s", "exported_warm_first_init_and_step_s", "export_s",
              "warm_process_wall_s", "exported_warm_process_wall_s"):
        assert row[k] > 0, k
    assert "warm start, exported (s)" in proc.stdout


@pytest.mark.slow
def test_bench_dat_counts_the_loops_in_its_flops(tmp_path, run_script):
    """DAT's tiny variant with 32 candidates in chunks of 8 and a 3-iteration update."""
    out = tmp_path / "d.json"
    run_script("bench_dat", "--variant", "tiny", "--allow-random", "--set", "n_samples=32", "--set", "chunk=8",
               "--set", "maxiter_update=3", "--reps", "1", "--no-cache", "--out", out)
    rows = json.loads(out.read_text())["rows"]
    assert rows["candidates"]["loop_count"] == 4 and rows["update"]["loop_count"] == 3
    assert all(r["gflop"] > 0 and r["ms"] > 0 for r in rows.values())


def test_the_jaxtrack_command_lists_every_subcommand_with_an_example(capsys):
    from jaxtrack import cli
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    top = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in top
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        text = capsys.readouterr().out
        assert f"jaxtrack {name} " in text, f"jaxtrack {name} --help shows no example"


def test_hlo_index_names_the_class_of_each_fused_operation():
    import jax
    import jax.numpy as jnp
    from jaxtrack.commands.roofline import hlo_index
    dn = ("NHWC", "HWIO", "NHWC")

    def f(x, w, d, m):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)
        z = jax.lax.conv_general_dilated(jnp.tanh(y), d, (1, 1), "SAME", dimension_numbers=dn,
                                         feature_group_count=8)
        return jnp.sin(z).sum() + jnp.cos(z.reshape(-1, 8) @ m).sum()

    args = (jnp.ones((1, 16, 16, 8)), jnp.ones((3, 3, 8, 8)), jnp.ones((3, 3, 1, 8)), jnp.ones((8, 4)))
    index = hlo_index(jax.jit(f).lower(*args).compile().as_text())
    classes = {rec["class"] for rec in index.values()}
    assert {"conv", "depthwise", "dot"} <= classes, index
    assert any(rec["source"] and "test_scripts.py" in rec["source"] for rec in index.values())


@pytest.mark.slow  # 20-30 s on 2 cores (machine rates, a profile, two trackers on a dataset)
def test_roofline_measures_rates_costs_a_profile_and_auc_beside_an_opencv_peer(tmp_path, got10k_root, run_script):
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    run_script("bench_roofline", "--trackers", "siamfc:alexnet", "--frames", "2", "--reps", "2",
               "--root", got10k_root, "--dataset", "got10k", "--split", "val", "--results", tmp_path / "runs",
               "--out", out, "--plot", plot)
    rec = json.loads(out.read_text())
    assert all(v.get("gflops_per_s", v.get("gb_per_s", 0)) > 0 for v in rec["rates"].values())
    (row,) = rec["rows"]
    assert row["gflop_per_frame"] > 0.1 and 0 < row["fraction_of_rate"] and row["fps"] > 0
    assert row["dominant_class"] == "conv" and row["profile"]["classes"]["conv"]["gflop_per_step"] > 1.0
    ops = row["profile"]["top_ops"]
    assert ops and ops[0]["ms_per_step"] > 0 and row["dominant_class"] in ("conv", "dot", "conv1x1", "depthwise")
    assert set(rec["accuracy"]) >= {"siamfc:alexnet", "opencv:mil"}
    assert all(0 <= p["auc"] <= 1 and p["fps"] > 0 for p in rec["accuracy"].values())
    assert plot.stat().st_size > 1000


def test_probe_table_grids_size_by_speed_and_names_a_wrong_folder(tmp_path, run_script):
    run = tmp_path / "siamfc"
    run.mkdir()
    per = {"probe_s16_v2": {"auc": 0.5}, "probe_s16_v24": {"auc": 0.1}, "probe_s64_v2": {"auc": 0.7},
           "probe_s64_v24": {"auc": 0.3}, "val_comp_00": {"auc": 0.9}}
    (run / "metrics.json").write_text(json.dumps({"per_sequence": per}))
    out = tmp_path / "grid.md"
    proc = run_script("probe_table", run, "--out", out)
    assert "| 16 px | 0.50 | 0.10 | 0.30 |" in proc.stdout
    assert "| mean | 0.60 | 0.20 | 0.40 |" in proc.stdout and out.read_text() == proc.stdout
    bad = run_script("probe_table", tmp_path, check=False)
    assert bad.returncode != 0 and "metrics.json" in bad.stderr and "Traceback" not in bad.stderr


def test_validation_table_splits_parts_and_correlates_with_the_reported(tmp_path, run_script):
    """Rows merge result folders and provenance files; parts by name; Spearman over rows."""
    def folder(name, per):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"per_sequence": {k: {"auc": v} for k, v in per.items()}}))
        return tmp_path / name
    rows = []
    for i, (syn, comp, real, shared) in enumerate([(0.9, 0.5, 0.5, 0.4), (0.8, 0.6, 0.6, 0.5), (0.7, 0.7, 0.8, 0.6)]):
        prov = tmp_path / f"p{i}.json"
        prov.write_text(json.dumps({"val_per_sequence": {"val_syn_00": syn, "val_comp_00": comp}}))
        rows += ["--row", f"r{i}", prov, folder(f"real{i}", {"val_real_v_0540_0": real}),
                 folder(f"otb{i}", {"Crossing": shared, "Skiing": shared})]
    proc = run_script("validation_table", *rows)
    assert "| r0 | 0.900 | 0.500 | 0.500 | 0.633 | 0.400 |" in proc.stdout
    assert "synthetic: -1.00" in proc.stdout and "composed: +1.00" in proc.stdout and "real: +1.00" in proc.stdout
    bad = run_script("validation_table", "--row", "x", tmp_path / "nowhere", check=False)
    assert bad.returncode != 0 and "nowhere" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow  # about 20 s on 2 cores: SiamFC AlexNet compiled twice
def test_bench_conv_path_times_both_compile_options_on_the_same_frame(tmp_path, run_script):
    out = tmp_path / "c.json"
    run_script("bench_conv_path", "--trackers", "siamfc:alexnet", "--block", "1", "--blocks", "2", "--out", out)
    (row,) = json.loads(out.read_text())["rows"]
    assert set(row["median_ms"]) == {"xla defaults", "tracker's options"} and min(row["median_ms"].values()) > 0
    boxes = list(row["first_box"].values())
    np.testing.assert_allclose(boxes[0], boxes[1], atol=1e-2)
