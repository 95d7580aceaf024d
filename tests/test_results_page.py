"""The results page: docs/results.md and README's headline table, written from results/ and logs/ alone."""

import json
import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from imfn.report.results_page import BEGIN, END, MAX_FIGURE_BYTES, fill_readme, results_page


def _rows(model, variant, dims, Ts, value, seeds=(0, 1), **extra):
    return [
        {
            "model": model,
            "variant": variant,
            "seed": s,
            "dim": d,
            "T": T,
            "position": None,
            "metric": "mse",
            "value": value(d, T) + 0.001 * s,
            **extra,
        }
        for s in seeds
        for d in dims
        for T in Ts
    ]


def _write(frame_rows, path):
    frame = pd.DataFrame(frame_rows)
    if "position" in frame:
        frame["position"] = frame["position"].astype("Int64")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)


@pytest.fixture
def finished_run(tmp_path):
    results, logs = tmp_path / "results", tmp_path / "logs"
    metrics = results / "metrics"
    _write(
        _rows("imfn-teacher", "framewise", (256, 1024), (8, 32, 128), lambda d, T: T / d), metrics / "teacher.parquet"
    )
    _write(
        _rows("autoencoder", None, (256, 1024), (8, 32, 128), lambda d, T: 0.9 * T / d), metrics / "autoencoder.parquet"
    )
    _write(_rows("pca", None, (256, 1024), (8, 32, 128), lambda d, T: 2 * T / d), metrics / "pca.parquet")
    _write(
        _rows("transformer", None, (1024,), (128,), lambda d, T: 0.0677, seeds=(0,)), metrics / "compressors.parquet"
    )
    student = [
        {
            "model": model,
            "variant": "slot",
            "seed": s,
            "dim": 1024,
            "T": T,
            "frames_written": k,
            "metric": metric,
            "value": (1.1 if model == "student" else 1.0) * T / 1024 + 0.001 * s,
        }
        for model in ("student", "teacher")
        for s in (0, 1)
        for T in (8, 32)
        for k, metric in [(k, "prefix_mse") for k in range(1, T + 1)] + [(T, "mse")]
    ]
    _write(student, metrics / "student.parquet")
    pd.DataFrame({"rule": ["train_sweeper", "roundtrip"], "s": [60.0, 30.0]}).to_parquet(
        metrics / "time_summary.parquet"
    )
    (results / "tables").mkdir(parents=True)
    (results / "tables" / "student.md").write_text("| variant | T |\n|---|---|\n| slot | 8 |\n")
    (results / "figures").mkdir()
    plt.plot([0, 1])
    plt.savefig(results / "figures" / "fig3_mse_vs_T.png")
    plt.close()
    noise = np.random.default_rng(0).random((700, 700, 3))  # a figure of over 1 MB as drawn
    plt.imsave(results / "figures" / "fig_video_reconstructions.png", noise)
    (results / "tables" / "table3_video.md").write_text(
        "# Table 3: video\n\n| level | model |\n|---|---|\n| L0 | IMFN |\n"
    )
    for i, (start, end) in enumerate(
        [
            ("2026-11-30T08:26:08+00:00", "2026-11-30T08:30:00+00:00"),
            ("2026-11-30T08:27:00+00:00", "2026-11-30T08:51:30+00:00"),
        ]
    ):
        record = {
            "git": "abc123",
            "config_hash": "f00d",
            "config_files": ["config/config.yaml", "config/quick.yaml"],
            "host": "vm",
            "machine": {"cpus": 2, "cpu": "Some CPU", "memory_gb": 23.4},
            "device": "cpu",
            "gpu": None,
            "started": start,
            "finished": end,
            "status": "ok",
        }
        path = logs / f"job{i}.provenance.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    return tmp_path


def test_the_page_is_stamped_with_the_run_and_holds_its_tables_figures_and_headline(finished_run):
    readme = finished_run / "README.md"
    readme.write_text(f"# imfn\n\n{BEGIN}\nRun make run && make results-page to fill this table.\n{END}\n\n## Layout\n")
    out = finished_run / "docs" / "results.md"
    page = results_page(finished_run / "results", finished_run / "logs", out, readme)
    assert out.read_text() == page
    assert "`abc123`" in page and "`config/config.yaml + config/quick.yaml`" in page and "`f00d`" in page
    assert "from 2026-11-30T08:26:08+00:00 to 2026-11-30T08:51:30+00:00 (UTC): 25.4 min from the first" in page
    assert "2 CPUs (Some CPU), 23.4 GB memory" in page and "1.5 min in all" in page
    # the headline: d = the students' 1024, T = the students' 8 and 32 and the compressors' 128
    assert "at memory size d = 1024" in page and "| model | T = 8 | T = 32 | T = 128 |" in page
    assert f"| IMFN teacher (`framewise`), 2 seeds | {8 / 1024 + 0.0005:.5f} |" in page
    assert f"| student (`slot`), 2 seeds | {1.1 * 8 / 1024 + 0.0005:.5f} | {1.1 * 32 / 1024 + 0.0005:.5f} |  |" in page
    assert "| Transformer compressor, 1 seed |  |  | 0.06770 |" in page
    assert "| variant | T |" in page  # results/tables/student.md, whole, after its caption
    assert "**The students against their teachers**" in page
    # a table with a heading of its own: the heading under the page's section, no second caption
    assert "\n### Table 3: video\n" in page and "**Table 3: video reconstruction per level**" not in page
    assert "Validation clips of `config video.dataset`" in page  # the caption's config value, named by its key
    assert "![fig3_mse_vs_T](figures/fig3_mse_vs_T.png)" in page and "**Figure 3" in page  # with its caption
    assert (out.parent / "figures" / "fig3_mse_vs_T.png").read_bytes() == (
        finished_run / "results/figures/fig3_mse_vs_T.png"
    ).read_bytes()
    video = out.parent / "figures" / "fig_video_reconstructions.png"  # over 1 MB drawn: 256 colours on the page
    assert (finished_run / "results/figures/fig_video_reconstructions.png").stat().st_size > MAX_FIGURE_BYTES
    assert video.stat().st_size < MAX_FIGURE_BYTES and Image.open(video).size == (700, 700)
    text = readme.read_text()
    assert "Run make run" not in text and "## Layout" in text and text.count(BEGIN) == text.count(END) == 1
    assert "| Transformer compressor, 1 seed |" in text and "[docs/results.md](docs/results.md)" in text
    assert "the run of commit `abc123` with `config/config.yaml + config/quick.yaml` on 2 CPUs" in text
    assert "whose jobs ran for 25.4 min" in text


def test_a_run_without_provenance_or_a_readme_without_markers_is_named(finished_run, tmp_path):
    for record in (finished_run / "logs").glob("*.json"):
        record.unlink()
    out = tmp_path / "page.md"
    with pytest.raises(FileNotFoundError, match="no provenance records"):
        results_page(finished_run / "results", finished_run / "logs", out)
    assert not out.exists()
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="no <!-- results:begin --> ... <!-- results:end --> block"):
        fill_readme(readme, "x")
    assert readme.read_text() == "# no markers\n"


def test_the_command_line_writes_the_page(finished_run, env_with_venv):
    out = finished_run / "docs" / "results.md"
    subprocess.run(
        [
            "imfn",
            "results-page",
            "--results",
            str(finished_run / "results"),
            "--logs",
            str(finished_run / "logs"),
            "--out",
            str(out),
        ],
        env=env_with_venv,
        check=True,
    )
    assert out.read_text().startswith("# Results")


def test_the_readme_sets_the_video_levels_on_moving_mnist_beside_the_references_at_equal_memory(finished_run):
    metrics = finished_run / "results" / "metrics"
    videos = ("clip0", "clip1")
    _write(
        [
            {"model": model, "dataset": "moving_mnist", "seed": 0, "level": level, "dim": 256, "video": video,
             "metric": metric, "value": scale * (level + 1) + 0.001 * i}
            for model, scale in (("imfn-video", 0.004), ("pca", 0.005))
            for level in range(4)
            for i, video in enumerate(videos)
            for metric in ("mse", "psnr")
        ],
        metrics / "video.parquet",
    )  # fmt: skip
    teacher = pd.read_parquet(metrics / "teacher.parquet").assign(source="mnist")
    mix = _rows("imfn-teacher", "mix", (256,), (2, 4, 8, 16), lambda d, T: 0.001 * T, seeds=(0,), source="moving_mnist")
    _write([*teacher.to_dict("records"), *mix], metrics / "teacher.parquet")
    clip = _rows("clip-pca", None, (256,), (2, 4, 8, 16), lambda d, T: 0.002 * T, seeds=(0,), source="moving_mnist")
    _write(clip, metrics / "clip_pca.parquet")
    readme = finished_run / "README.md"
    readme.write_text(f"# x\n\n{BEGIN}\nold\n{END}\n")
    results_page(finished_run / "results", finished_run / "logs", finished_run / "docs" / "results.md", readme)
    text = readme.read_text()
    assert "`moving_mnist`, the video hierarchy (Table 3): held-out MSE per pixel of each level at d = 256" in text
    assert "| model | L0 (2 frames) | L1 (4 frames) | L2 (8 frames) | L3 (16 frames) |" in text
    assert "| IMFN video levels | 0.00450 | 0.00850 | 0.01250 | 0.01650 |" in text
    assert "| per-frame PCA, same memory | 0.00550 | 0.01050 | 0.01550 | 0.02050 |" in text
    assert "| vector tree `mix` | 0.00200 | 0.00400 | 0.00800 | 0.01600 |" in text
    assert "| clip PCA, 256 components | 0.00400 | 0.00800 | 0.01600 | 0.03200 |" in text
