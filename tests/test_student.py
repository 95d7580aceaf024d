"""The online student: trajectory sets, the model, its training and its online evaluation, on a tiny
PCA-architecture teacher and a fake MNIST store (no real data, seconds to run)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from imfn.data.frame import MNIST_FRAME
from imfn.data.mnist import write_split
from imfn.data.sequences import open_sequences, trajectory_frames
from imfn.eval.metrics import mse_per_frame
from imfn.eval.online import COLUMNS, evaluate_online, prefix_grid
from imfn.models.memory import ReadOnlyMemory
from imfn.models.merkle import naive_trajectory, separable_trajectory
from imfn.models.student import StudentConfig, build_student, load_student, save_student
from imfn.models.teacher import CodecConfig, SweeperConfig, Teacher, build_codec, build_sweeper, save_level
from imfn.store import read_array, read_attrs, write_arrays
from imfn.train.harness import NonFiniteLossError
from imfn.train.student import StudentTraining, fit_linear_write, train_student
from imfn.train.trajectories import write_trajectory_set

D, T, SEED = 8, 8, 3
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A fake MNIST store with its split, a 3-level PCA teacher, and train/test trajectory sets."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("student")
    rng = np.random.default_rng(0)
    basis = rng.uniform(0, 1, (6, 784))
    images = np.clip(rng.uniform(0, 1, (300, 6)) @ basis * 60 + rng.normal(0, 10, (300, 784)), 0, 255)
    mnist = folder / "mnist.zarr"
    write_arrays(mnist, {"images": images.astype(np.uint8), "labels": rng.integers(0, 10, 300).astype(np.uint8)}, {})
    split = folder / "split.parquet"
    write_split(mnist, SEED, 0.2, split)

    torch.manual_seed(0)
    pixels = torch.from_numpy(read_array(mnist, "images")).float() / 255.0
    codec = build_codec(CodecConfig(D, MNIST_FRAME, architecture="pca"))
    codec.init_from_data(pixels)
    checkpoints, codes = [], codec.encode(pixels).detach()
    for level in range(int(math.log2(T))):
        sweeper = build_sweeper(SweeperConfig.for_dim(D, architecture="pca"))
        sweeper.init_from_data(torch.stack([codes, codes], dim=1))  # (n, 2, d) pairs: pca fits one child
        path = folder / f"level{level}.pt"
        save_level(path, level, sweeper, codec if level == 0 else None)
        checkpoints.append(path)
        with torch.no_grad():
            half = len(codes) // 2
            codes = sweeper.merge(codes[:half], codes[half : 2 * half])

    sets = {}
    sequences = open_sequences("mnist", mnist, split, SEED)
    for part, n in (("train", 64), ("test", 12)):
        sets[part] = folder / f"{part}.zarr"
        write_trajectory_set(checkpoints, sequences, part, T, n, sets[part])
    return {
        "folder": folder,
        "mnist": mnist,
        "split": split,
        "sequences": sequences,
        "checkpoints": checkpoints,
        **sets,
    }


def _train(world, name, **kw):
    settings = {"seed": SEED, "epochs": 12, "trajectories_per_epoch": 32, "lr": 3e-3, "hidden": 32, "batch_size": 16}
    hp = StudentTraining(**{**settings, **kw})
    out, loss_out = world["folder"] / f"{name}.pt", world["folder"] / f"{name}_loss.parquet"
    train_student(hp, world["train"], out, loss_out, CPU)
    return out, loss_out


@pytest.fixture(scope="module")
def trained(world):
    return _train(world, "student")


def test_trajectory_set_shapes_attrs_and_naive_targets(world):
    path = world["train"]
    targets, leaves = read_array(path, "targets"), read_array(path, "leaves")
    assert targets.shape == (64, T + 1, D) and targets.dtype == np.float32
    assert leaves.shape == (64, T, D) and leaves.dtype == np.float32
    attrs = read_attrs(path)
    named = (attrs["source"], attrs["seed"], attrs["part"], attrs["start"], attrs["count"], attrs["T"])
    assert named == ("mnist", SEED, "train", 0, 64, T)
    assert attrs["teacher_checkpoints"] == [str(p) for p in world["checkpoints"]]
    images = trajectory_frames(world["sequences"], attrs, 0, 64)  # its sequences, drawn again from the attrs
    torch.testing.assert_close(images, world["sequences"].draw_float("train", 0, 64, T))
    test_attrs = read_attrs(world["test"])
    torch.testing.assert_close(
        trajectory_frames(world["sequences"], test_attrs, 2, 5), world["sequences"].draw_float("test", 2, 5, T)
    )

    teacher = Teacher.load(world["checkpoints"])
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(leaves), teacher.encode_leaves(images))
        zero_leaf = teacher.zero_leaf()
        naive = naive_trajectory(teacher.sweepers, torch.from_numpy(leaves), zero_leaf).states
    torch.testing.assert_close(torch.from_numpy(targets), naive, atol=1e-5, rtol=1e-5)


def test_trajectory_set_is_seeded(world, tmp_path):
    again, other = tmp_path / "again.zarr", tmp_path / "other.zarr"
    write_trajectory_set(world["checkpoints"], world["sequences"], "train", T, 64, again)
    other_seed = open_sequences("mnist", world["mnist"], world["split"], SEED + 1)
    write_trajectory_set(world["checkpoints"], other_seed, "train", T, 64, other)
    assert np.array_equal(read_array(again, "leaves"), read_array(world["train"], "leaves"))
    assert not np.array_equal(read_array(other, "leaves"), read_array(world["train"], "leaves"))
    with pytest.raises(ValueError, match="holds mnist seed 3 data, not mnist seed 4"):
        trajectory_frames(other_seed, read_attrs(world["train"]), 0, 1)


@pytest.mark.parametrize("architecture", ["mlp", "positional"])
def test_student_rollout_shapes_steps_and_checkpoint(tmp_path, architecture):
    torch.manual_seed(0)
    student = build_student(StudentConfig(D, T, 16, architecture))
    if architecture == "positional":  # its residual starts at zero: switch it on so the test sees it
        torch.nn.init.normal_(student.residual[-1].weight)
    m0, codes = torch.randn(5, D), torch.randn(5, T, D)
    with torch.no_grad():
        states = student.rollout(m0, codes)
        assert states.shape == (5, T + 1, D)
        assert torch.equal(states[:, 0], m0)
        assert student.rollout(m0, codes[:, :3]).shape == (5, 4, D)
        for t in range(T):
            torch.testing.assert_close(states[:, t + 1], student.step(states[:, t], codes[:, t], t))
        assert not torch.allclose(states[:, 1], states[:, 0])
        positions = torch.arange(5) % T  # a minibatch of mixed positions gives each sample its own update
        mixed = student.delta(states[:, 1], codes[:, 1], positions)
        for i, t in enumerate(positions.tolist()):
            alone = student.delta(states[i : i + 1, 1], codes[i : i + 1, 1], torch.tensor([t]))
            torch.testing.assert_close(mixed[i : i + 1], alone)
    with pytest.raises(IndexError):
        student.step(m0, codes[:, 0], T)
    save_student(tmp_path / "s.pt", student, note="x")
    loaded = load_student(tmp_path / "s.pt")
    assert loaded.config == student.config
    with torch.no_grad():
        assert torch.equal(loaded.rollout(m0, codes), states)


def test_training_lowers_loss_and_is_deterministic(world, trained):
    out, loss_out = trained
    frame = pd.read_parquet(loss_out)
    assert list(frame["epoch"]) == list(range(1, 13))
    assert (frame["steps"] == T).all()
    assert (frame["variant"] == "paper").all() and (frame["architecture"] == "mlp").all()  # the rows say which student
    assert frame["loss"].iloc[-3:].mean() < 0.7 * frame["loss"].iloc[:3].mean()

    again, _ = _train(world, "again")
    other, _ = _train(world, "other", seed=SEED + 1)
    a, b, c = (torch.load(p, weights_only=False)["state"] for p in (out, again, other))
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not all(torch.equal(a[key], c[key]) for key in a)


def test_curriculum_grows_the_prefix_from_a_quarter_to_all_steps(world):
    _, loss_out = _train(world, "curriculum", prefix="curriculum", epochs=6)
    steps = pd.read_parquet(loss_out)["steps"].tolist()
    assert steps[0] == T // 4 and steps[-1] == T
    assert steps == sorted(steps) and len(set(steps)) > 2


def test_non_finite_train_set_or_loss_raises_and_writes_nothing(world, tmp_path):
    bad = tmp_path / "bad.zarr"
    arrays = {name: read_array(world["train"], name) for name in ("targets", "leaves")}
    arrays["targets"][5, 3, 1] = np.nan
    write_arrays(bad, arrays, read_attrs(world["train"]))
    hp = StudentTraining(seed=SEED, epochs=2, trajectories_per_epoch=8, hidden=16, batch_size=4)
    out, loss_out = tmp_path / "s.pt", tmp_path / "loss.parquet"
    with pytest.raises(NonFiniteLossError, match="non-finite values in 'targets'"):
        train_student(hp, bad, out, loss_out, CPU)
    assert not out.exists() and not loss_out.exists()

    with pytest.raises(NonFiniteLossError, match="loss became nan"):
        train_student(StudentTraining(**{**hp.__dict__, "lr": math.inf}), world["train"], out, loss_out, CPU)
    assert not out.exists() and not loss_out.exists()
    assert list(tmp_path.iterdir()) == [bad]


def test_online_rows_are_tidy_and_teacher_end_matches_its_roundtrip(world, trained):
    out = world["folder"] / "online.parquet"
    evaluate_online(world["checkpoints"], trained[0], world["test"], world["sequences"], T, out, CPU, "paper", "pca")
    frame = pd.read_parquet(out)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 2 * (T + 1 + 2) and frame["value"].notna().all() and set(frame["teacher_variant"]) == {"pca"}
    assert set(zip(frame["model"], frame["variant"], strict=True)) == {("student", "paper"), ("teacher", "pca")}
    assert not frame.duplicated(["model", "frames_written", "metric"]).any() and (frame["source"] == "mnist").all()
    for model in ("student", "teacher"):
        rows = frame[frame["model"] == model]
        prefix = rows[rows["metric"] == "prefix_mse"]
        assert prefix["frames_written"].tolist() == list(range(1, T + 1))
        end = rows[rows["metric"] == "mse"]
        assert end["frames_written"].tolist() == [T] and end["value"].item() == prefix["value"].iloc[-1]
    assert set(frame["seed"]) == {SEED} and set(frame["dim"]) == {D} and set(frame["T"]) == {T}

    teacher = Teacher.load(world["checkpoints"])
    images = world["sequences"].draw_float("test", 0, 12, T)
    roundtrip = mse_per_frame(teacher.roundtrip(images), images).mean().item()
    value = frame.query("model == 'teacher' and metric == 'prefix_mse'")["value"]
    assert value.iloc[-1] == pytest.approx(roundtrip, rel=1e-5)
    assert value.iloc[0] != pytest.approx(roundtrip, rel=1e-3)  # k=1 scores one frame, not the whole sequence
    student_end = frame.query("model == 'student' and metric == 'mse'")["value"].item()
    assert student_end != pytest.approx(value.iloc[-1], rel=1e-6)


def test_past_the_end_reads_the_last_T_frames_from_a_student_that_went_on_writing(world, trained):
    """After 2T and 4T frames (frame t at position t mod T: the student run again from its own state), the
    student's state and the teacher's root of the last T frames alone, each read back against those frames."""
    out = world["folder"] / "online_past.parquet"
    evaluate_online(world["checkpoints"], trained[0], world["test"], world["sequences"], T, out, CPU, "paper", "pca")
    frame = pd.read_parquet(out).query("metric == 'past_end_mse'").set_index(["model", "frames_written"])["value"]
    assert sorted(frame.index) == [(m, k) for m in ("student", "teacher") for k in (2 * T, 4 * T)]

    teacher, student = Teacher.load(world["checkpoints"]), load_student(trained[0])
    images = world["sequences"].draw_float("test", read_attrs(world["test"])["start"], 12, 4 * T)
    start = torch.from_numpy(read_array(world["test"], "targets"))[:, 0].float()
    with torch.no_grad():
        state, leaves = start, teacher.encode_leaves(images)
        for block in range(4):
            state = student.rollout(state, leaves[:, block * T : (block + 1) * T])[:, -1]
            last = images[:, block * T : (block + 1) * T]
            if block + 1 not in (2, 4):
                continue
            read = ReadOnlyMemory(teacher, T, state, T).reconstruct()
            k = (block + 1) * T
            assert frame["student", k] == pytest.approx(mse_per_frame(read, last).mean().item(), rel=1e-5)
            roundtrip = mse_per_frame(teacher.roundtrip(last), last).mean().item()
            assert frame["teacher", k] == pytest.approx(roundtrip, rel=1e-5)
            assert frame["student", k] != pytest.approx(roundtrip, rel=1e-3)


def test_online_refuses_a_train_set(world, trained, tmp_path):
    with pytest.raises(ValueError, match="held-out"):
        evaluate_online(
            world["checkpoints"],
            trained[0],
            world["train"],
            world["sequences"],
            T,
            tmp_path / "o.parquet",
            CPU,
            "paper",
            "pca",
        )
    assert not (tmp_path / "o.parquet").exists()


def test_prefix_grid_is_every_k_to_8_then_two_per_octave():
    assert prefix_grid(4) == [1, 2, 3, 4] and prefix_grid(8) == list(range(1, 9))
    assert prefix_grid(128) == [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 48, 64, 96, 128]


def test_student_variant_settings_are_checked():
    with pytest.raises(ValueError, match="unknown student architecture 'lstm'"):
        StudentTraining(seed=0, architecture="lstm")
    with pytest.raises(ValueError, match="regression"):
        StudentTraining(seed=0, architecture="mlp", init="regression")
    with pytest.raises(ValueError, match="lr_schedule"):
        StudentTraining(seed=0, lr_schedule="cosine")
    with pytest.raises(ValueError, match="writes"):
        StudentTraining(seed=0, architecture="positional", writes="half")
    with pytest.raises(ValueError, match="architecture 'mlp' has none"):
        StudentTraining(seed=0, architecture="mlp", writes="all")


def framewise_trajectories(n: int, dim: int = 16, T: int = 4, nonlinear: bool = False, seed: int = 0):
    """Zero-padded trajectories of a random framewise tree (its levels map each frame on its own), with
    its residual MLPs off (a linear tree) or switched on (``nonlinear``)."""
    torch.manual_seed(seed)
    sweepers = [build_sweeper(SweeperConfig.for_dim(dim, 32, "framewise", level=level)).eval() for level in range(2)]
    if nonlinear:
        for sweeper in sweepers:
            torch.nn.init.normal_(sweeper.merge_net.residual[-1].weight, std=0.3)
    leaves = torch.randn(n, T, dim) @ torch.randn(dim, dim) / dim**0.5 + 0.5
    return separable_trajectory(sweepers, leaves, torch.zeros(dim)).states, leaves


def test_regression_fits_a_linear_framewise_tree_exactly():
    """A linear framewise tree writes frame t into slot t by one linear map shared by every frame: the
    positional student's reduced-rank fit (rank d // T) recovers it from the trajectories alone, before any step."""
    targets, leaves = framewise_trajectories(4000)
    torch.manual_seed(2)
    student = build_student(StudentConfig(16, 4, 8, "positional"))
    student.fit_scales(targets, leaves)
    fit_linear_write(student, targets, leaves, ridge=1e-9)
    with torch.no_grad():
        error = (student.rollout(targets[:, 0], leaves) - targets).square().mean()
    spread = (targets[:, -1] - targets[:, -1].mean(0)).square().mean()
    assert error < 1e-4 * spread  # not 0: the read is fitted under the covariance pooled over positions


def test_a_frame_that_writes_d_numbers_follows_a_linear_mix_tree_where_its_share_cannot():
    """A linear ``mix`` tree maps both children whole, so frame t reaches the root through a full d x d map of its
    own: a share of d // T numbers per frame cannot hold that, a student whose frames write d numbers fits it."""
    torch.manual_seed(0)
    dim, T = 16, 4
    sweepers = [build_sweeper(SweeperConfig.for_dim(dim, 32, "mix", level=level)).eval() for level in range(2)]
    leaves = torch.randn(4000, T, dim)
    targets = naive_trajectory(sweepers, leaves, torch.zeros(dim)).states.detach()
    spread = (targets[:, -1] - targets[:, -1].mean(0)).square().mean()
    errors = {}
    for writes in ("share", "all"):
        student = build_student(StudentConfig(dim, T, 8, "positional", writes))
        assert student.config.rank == {"share": dim // T, "all": dim}[writes]
        student.fit_scales(targets, leaves)
        fit_linear_write(student, targets, leaves, ridge=1e-9)
        with torch.no_grad():
            errors[writes] = ((student.rollout(targets[:, 0], leaves) - targets).square().mean() / spread).item()
    assert errors["all"] < 1e-4 < 0.05 < errors["share"]
    with pytest.raises(ValueError, match="writes"):
        StudentConfig(dim, T, 8, "positional", writes="some")


def test_slot_variant_trains_with_a_one_cycle_lr_and_beats_its_linear_start(tmp_path):
    """On a nonlinear framewise tree: the regression start, then the one-cycle schedule on its own rollouts."""
    targets, leaves = framewise_trajectories(600, nonlinear=True)
    attrs = {"source": "mnist", "seed": SEED, "part": "train", "start": 0, "count": 600, "T": 4, "dim": 16}
    path = tmp_path / "train.zarr"
    write_arrays(path, {"targets": targets.numpy(), "leaves": leaves.numpy()}, attrs)
    hp = StudentTraining(seed=SEED, variant="slot", architecture="positional", lr=3e-3, lr_schedule="one-cycle",
                         init="regression", hidden=64, epochs=40, trajectories_per_epoch=64, batch_size=32)  # fmt: skip
    train_student(hp, path, tmp_path / "s.pt", tmp_path / "loss.parquet", CPU)
    frame = pd.read_parquet(tmp_path / "loss.parquet")
    lr = frame["lr"].to_numpy()
    assert lr.argmax() in range(2, 8) and lr[-1] < 1e-3 * hp.lr  # up over the first 10%, then down to ~0
    assert frame["loss"].iloc[-5:].mean() < 0.8 * frame["loss"].iloc[0]  # the residual MLP learns the nonlinear part
