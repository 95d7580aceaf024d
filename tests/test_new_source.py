"""A new sequence source costs its data module, one registry line and a config entry: a toy source (a square
bouncing in 32x32) registered through the registry alone runs through a tiny tree, its roundtrip, its references, its
own report and the results page; and no module of the package names a source outside the registry and the data
module that defines it, which keeps docs/extending.md's list of files true."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imfn import registry
from imfn.cli import main
from imfn.data.frame import FrameShape
from imfn.data.mnist import write_split
from imfn.data.source import SequenceSource
from imfn.job import numpy_generator
from imfn.store import write_arrays

REPO = Path(__file__).resolve().parents[1]
SIDE, SQUARE = 32, 8


def bouncing_squares(digits, seed: int, part: str, start: int, count: int, T: int) -> np.ndarray:
    """(count, T, 32, 32) uint8: a square of 8 pixels bouncing off the walls, each sequence from its own stream."""
    frames = np.zeros((count, T, SIDE, SIDE), dtype=np.uint8)
    for row, index in enumerate(range(start, start + count)):
        rng = numpy_generator("toy-squares", seed, part, index)
        position, velocity = rng.integers(0, SIDE - SQUARE, 2), rng.choice([-2, -1, 1, 2], 2)
        for t in range(T):
            position = position + velocity
            velocity = np.where((position < 0) | (position > SIDE - SQUARE), -velocity, velocity)
            position = position.clip(0, SIDE - SQUARE)
            frames[row, t, position[0] : position[0] + SQUARE, position[1] : position[1] + SQUARE] = 255
    return frames


SQUARES = SequenceSource("squares", FrameShape(SIDE, SIDE), bouncing_squares, "a square bouncing in 32x32",
                         frames_share_content=True)  # fmt: skip


@pytest.fixture
def squares(monkeypatch):
    monkeypatch.setitem(registry.SOURCES, "squares", SQUARES)  # what registry.register does, undone after the test
    return "squares"


def test_a_toy_source_registered_alone_runs_through_a_tree_its_references_and_the_results_page(squares, tmp_path):
    rng = np.random.default_rng(0)
    mnist, split = tmp_path / "mnist.zarr", tmp_path / "split.parquet"  # the digits' split every source reads
    write_arrays(mnist, {"images": rng.integers(0, 255, (200, 784), dtype=np.uint8),
                         "labels": rng.integers(0, 10, 200, dtype=np.uint8)}, {})  # fmt: skip
    write_split(mnist, 0, 0.2, split)
    results, logs = tmp_path / "results", tmp_path / "logs"
    cell = results / "squares" / "seed0" / "d16" / "mix"
    seqs = ["--source", squares, "--mnist", str(mnist), "--split", str(split), "--seed", "0"]
    level = ["--dim", "16", "--architecture", "mix", "--epochs", "1", "--sweeper-hidden", "16", "--batch-size", "32"]

    def run(verb: str, *flags, log: str) -> None:
        assert main([verb, *map(str, flags), "--log", str(logs / f"{log}.log")]) == 0, (logs / f"{log}.log").read_text()

    run("image-bank", *seqs, "--zero-padded", 10, "--bank-size", 300, "--out", cell.parent.parent / "bank_L0.zarr",
        log="image_bank")  # fmt: skip
    for k in range(2):
        bank = cell.parent.parent / "bank_L0.zarr" if k == 0 else cell / f"bank_L{k}.zarr"
        if k:
            run("build-bank", *seqs, "--lower", *(cell / f"sweeper_L{j}.pt" for j in range(k)), "--dim", 16, "--level",
                k, "--zero-padded", 10, "--bank-size", 300, "--out", bank, log=f"bank_L{k}")  # fmt: skip
        run("train-sweeper", "--bank", bank, "--seed", 0, "--level", k, *level, "--out", cell / f"sweeper_L{k}.pt",
            "--loss-out", cell / f"loss_L{k}.parquet", "--health-out", cell / f"health_L{k}.parquet",
            log=f"sweeper_L{k}")  # fmt: skip
    for T in (2, 4):
        run("roundtrip", "--sweepers", *(cell / f"sweeper_L{j}.pt" for j in range(T // 2)), *seqs, "--dim", 16,
            "--T", T, "--sequences", 20, "--variant", "mix", "--out", cell / f"roundtrip_T{T}.parquet",
            log=f"roundtrip_T{T}")  # fmt: skip
    pca, seed_dir = cell.parent.parent / "frame_pca.zarr", cell.parent.parent
    grid = ["--dims", 16, "--T", 2, 4, "--sequences", 20]
    run("frame-pca", *seqs, "--out", pca, log="frame_pca")
    run("pca-roundtrip", *seqs, "--pca", pca, *grid, "--out", seed_dir / "pca.parquet", log="pca")
    run("clip-pca", *seqs, "--pca", pca, *grid, "--fit-clips", 30, "--out", seed_dir / "clip.parquet", log="clip")
    metrics = results / "metrics"
    for table, parts in (("teacher", cell.glob("roundtrip_T*.parquet")), ("pca", [seed_dir / "pca.parquet"]),
                         ("clip_pca", [seed_dir / "clip.parquet"])):  # fmt: skip
        run("aggregate", "--out", metrics / f"{table}.parquet", *sorted(parts), log=f"aggregate_{table}")
    run("source-report", "--metrics", *(metrics / f"{t}.parquet" for t in ("teacher", "pca", "clip_pca")), *seqs,
        "--pca", pca, "--T", 4, "--teachers", cell, "--fit-clips", 30, "--table", results / "tables" / "squares.md",
        "--figures", results / "figures", log="source_report")  # fmt: skip
    run("results-page", "--results", results, "--logs", logs, "--out", tmp_path / "docs" / "results.md", log="page")

    teacher = pd.read_parquet(metrics / "teacher.parquet")
    assert set(teacher["source"]) == {"squares"} and teacher["value"].notna().all()
    page = (tmp_path / "docs" / "results.md").read_text()
    assert "## `squares`: held-out MSE per pixel at d = 16, every reference at equal memory" in page
    assert "## Sequences that share content (`squares`): the tree beside every reference" in page
    assert "| IMFN mix (1) |" in (results / "tables" / "squares.md").read_text()
    assert (tmp_path / "docs" / "figures" / "squares_strip.png").exists()


def source_names_outside_their_places() -> list[str]:
    """Every line of imfn/ that names a registered source as a string, outside the registry and the data module
    that defines the source."""
    lines = []
    for name, entry in registry.SOURCES.items():
        home = REPO / (entry.split(":")[0].replace(".", "/") + ".py")
        literal = re.compile(rf"""["']{re.escape(name)}["']""")
        for path in sorted((REPO / "imfn").rglob("*.py")):
            if path in (REPO / "imfn" / "registry.py", home):
                continue
            lines += [f"{path.relative_to(REPO)}:{i}: {line.strip()}" for i, line in
                      enumerate(path.read_text().splitlines(), 1) if literal.search(line)]  # fmt: skip
    return lines


def test_no_module_names_a_source_outside_the_registry_and_its_data_module():
    assert source_names_outside_their_places() == []


def test_extending_lists_exactly_the_files_a_new_source_touches():
    text = (REPO / "docs" / "extending.md").read_text()
    section = text.split("## A sequence source", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\d+\. \*\*`([^`]+)`\*\*", section, re.M)
    assert listed == ["imfn/data/<name>.py", "imfn/registry.py", "config/config.yaml", "tests/"], listed
