"""The video branch: loader, clip bank and manifest, split, models, one training step, evaluation."""

from __future__ import annotations

import hashlib
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from video_fixture import CORRUPT, EMPTY, GOOD, TRUNCATED, write_ucf_fixture, write_video

from imfn.data.mnist import write_split
from imfn.data.sequences import open_sequences
from imfn.data.video import (
    ClipSpec,
    VideoDatasetError,
    build_clip_bank,
    cut_clip,
    decode_video,
    demo_videos,
    read_clips,
    window_start,
    write_video_split,
)
from imfn.eval.pca import evaluate_video_pca
from imfn.eval.video import evaluate_video_level
from imfn.models.pca import fit_pca
from imfn.models.video import (
    FramePairLevel,
    TokenLevel,
    VideoModelConfig,
    decode,
    decode_path,
    encode,
    frame_decoder,
    load_levels,
    patchify,
    unpatchify,
)
from imfn.report.video import sequence_references, table3, video_report
from imfn.store import open_group, read_attrs
from imfn.train.harness import NonFiniteLossError
from imfn.train.video import LevelObjective, VideoTraining, train_video_level

SPEC = ClipSpec(frame_size=16, clip_frames=16, seed=0)
TINY = VideoModelConfig(frame_size=16, patch=4, width=16, heads=2, memory_tokens=8, self_layers=1, mlp_ratio=2)
DOWNLOADS = Path(__file__).resolve().parents[1] / "resources" / "downloads"


@pytest.fixture(scope="module")
def ucf(tmp_path_factory) -> Path:
    return write_ucf_fixture(tmp_path_factory.mktemp("ucf") / "UCF-101")


@pytest.fixture(scope="module")
def bank(ucf, tmp_path_factory):
    """Clip bank, manifest and split of the fixture (8 good videos, 3 bad files)."""
    out = tmp_path_factory.mktemp("video")
    manifest = build_clip_bank("ucf101", SPEC, out / "clips.zarr", out / "manifest.parquet", root=ucf)
    write_video_split(out / "manifest.parquet", 0.25, out / "split.parquet")
    return out, manifest


def test_decoding_resizes_to_uint8_rgb_of_any_source_resolution(ucf):
    for rel, (n, width, height) in GOOD.items():
        video = decode_video(ucf / rel, 16)
        assert video.frames.shape == (n, 16, 16, 3) and video.frames.dtype == np.uint8
        assert (video.width, video.height) == (width, height)
    assert decode_video(ucf / "Juggling/v_Juggling_g01_c01.avi", 16).frames.std() > 10  # not blank


def test_clip_window_is_a_stable_hash_and_short_videos_are_padded():
    start = window_start(3, "A/v_A_g01_c01.avi", 16, 100)
    digest = hashlib.sha256(b"3\x1fA/v_A_g01_c01.avi\x1f16").digest()[:8]
    assert start == int.from_bytes(digest, "big") % 85  # no salted hash(): the same on every machine
    starts = {window_start(seed, "A/v_A_g01_c01.avi", 16, 100) for seed in range(20)}
    assert len(starts) > 5 and all(0 <= s <= 84 for s in starts)
    assert window_start(0, "x", 16, 10) == 0
    frames = np.arange(3)[:, None, None, None] * np.ones((3, 2, 2, 3), dtype=np.uint8)
    clip, padded = cut_clip(frames, 0, 8)
    assert padded == 5 and clip.shape == (8, 2, 2, 3)
    assert (clip[2:] == 2).all() and (clip[:3, 0, 0, 0] == [0, 1, 2]).all()


def test_bad_files_are_skipped_and_listed_with_their_reason(bank):
    out, manifest = bank
    by_path = manifest.set_index("path")
    assert by_path.loc[EMPTY, "reason"].startswith("empty file")
    assert by_path.loc[CORRUPT, "reason"].startswith("unreadable")
    assert by_path.loc[TRUNCATED, "reason"].startswith(("truncated", "unreadable"))
    assert set(manifest.loc[manifest["status"] != "ok", "path"]) == {EMPTY, CORRUPT, TRUNCATED}
    ok = manifest[manifest["status"] == "ok"]
    assert set(ok["path"]) == set(GOOD) and sorted(ok["bank_index"]) == list(range(len(GOOD)))
    assert by_path.loc["Rowing/v_Rowing_g03_c01.avi", "padded_frames"] == 15  # the one-frame video
    assert by_path.loc["Juggling/v_Juggling_g02_c01.mp4", "width"] == 120  # the other resolution
    clips = read_clips(out / "clips.zarr")
    assert clips.shape == (len(GOOD), 16, 16, 16, 3) and clips.dtype == np.uint8
    one_frame = clips[by_path.loc["Rowing/v_Rowing_g03_c01.avi", "bank_index"]]
    assert (one_frame == one_frame[:1]).all()
    assert (pd.read_parquet(out / "manifest.parquet")["reason"] == manifest["reason"]).all()


def test_the_clip_bank_is_deterministic(bank, ucf, tmp_path):
    out, _ = bank
    build_clip_bank("ucf101", SPEC, tmp_path / "again.zarr", tmp_path / "manifest.parquet", root=ucf)
    np.testing.assert_array_equal(read_clips(out / "clips.zarr"), read_clips(tmp_path / "again.zarr"))
    assert list(tmp_path.glob(".*tmp-*")) == []


def test_nothing_decodable_or_no_root_fails_clearly(ucf, tmp_path):
    bad = tmp_path / "bad"
    for rel in (EMPTY, CORRUPT):
        (bad / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ucf / rel, bad / rel)
    with pytest.raises(VideoDatasetError, match="no video of ucf101"):
        build_clip_bank("ucf101", SPEC, tmp_path / "c.zarr", tmp_path / "m.parquet", root=bad)
    assert not (tmp_path / "c.zarr").exists() and not (tmp_path / "m.parquet").exists()
    with pytest.raises(VideoDatasetError, match="video.root"):
        build_clip_bank("ucf101", SPEC, tmp_path / "c.zarr", tmp_path / "m.parquet", root=tmp_path / "missing")


def test_split_is_a_fixed_function_of_the_paths(tmp_path):
    paths = [f"C{c}/v_C{c}_g{g:02d}_c01.avi" for c in range(10) for g in range(1, 11)]
    manifest = pd.DataFrame({"path": paths, "status": "ok", "bank_index": range(len(paths))})
    manifest.to_parquet(tmp_path / "a.parquet")
    manifest.sample(frac=1, random_state=1).to_parquet(tmp_path / "b.parquet")  # another listing order
    a = write_video_split(tmp_path / "a.parquet", 0.1, tmp_path / "split_a.parquet").set_index("path")
    b = write_video_split(tmp_path / "b.parquet", 0.1, tmp_path / "split_b.parquet").set_index("path")
    assert (a["split"] == "validation").sum() == 10  # exactly 10%, like 1,332 of 13,320
    pd.testing.assert_series_equal(a["split"], b.loc[a.index, "split"])
    skipped = manifest.assign(status=np.where(manifest.index == 0, "skipped", "ok"))
    skipped.to_parquet(tmp_path / "c.parquet")
    c = write_video_split(tmp_path / "c.parquet", 0.1, tmp_path / "split_c.parquet")
    assert paths[0] not in set(c["path"])
    with pytest.raises(VideoDatasetError, match="validation_fraction"):
        write_video_split(tmp_path / "a.parquet", 0.001, tmp_path / "split_d.parquet")


def test_patches_roundtrip_and_model_shapes():
    frames = torch.rand(3, 3, 16, 16)
    assert patchify(frames, 4).shape == (3, 16, 48)
    torch.testing.assert_close(unpatchify(patchify(frames, 4), 4, 3), frames)
    torch.manual_seed(0)
    levels = [FramePairLevel(TINY), TokenLevel(TINY, 1), TokenLevel(TINY, 2)]
    clip = torch.rand(2, 8, 3, 16, 16)
    memory = encode(levels, clip)
    assert memory.shape == (2, TINY.memory_tokens, TINY.width)
    frames_hat = decode(levels, memory)
    assert frames_hat.shape == clip.shape and frames_hat.min() >= 0 and frames_hat.max() <= 1
    assert levels[0].merge(clip[:, 0], clip[:, 1]).shape == (2, 8, 16)
    # a sampled branch decodes to exactly the frames the full decode puts at its offset
    bits = torch.tensor([[1, 0], [0, 1]])
    pair, offset = decode_path(levels, memory, bits)
    assert offset.tolist() == [4, 2]
    for b in range(2):
        torch.testing.assert_close(pair[b], frames_hat[b, offset[b] : offset[b] + 2])


def _train(
    bank_dir: Path, level: int, out_dir: Path, epochs: int = 2, lr: float = 3e-3, cfg: VideoModelConfig = TINY
) -> Path:
    hp = VideoTraining(seed=0, level=level, epochs=epochs, videos=4, pairs_per_video=2, batch_size=4, lr=lr)
    lower = [out_dir / f"level{k}.pt" for k in range(level)]
    out = out_dir / f"level{level}.pt"
    train_video_level(
        hp,
        cfg,
        bank_dir / "clips.zarr",
        bank_dir / "split.parquet",
        lower,
        out,
        out_dir / f"level{level}_loss.parquet",
        torch.device("cpu"),
    )
    return out


def test_training_levels_is_deterministic_and_evaluation_reports_per_video_metrics(bank, tmp_path):
    bank_dir, _ = bank
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        for level in (0, 1):
            _train(bank_dir, level, run)
    for level in (0, 1):
        a, b = (torch.load(run / f"level{level}.pt", weights_only=False)["state"] for run in runs)
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    curve = pd.read_parquet(runs[0] / "level1_loss.parquet")
    assert list(curve["epoch"]) == [1, 2] and (curve["token"] > 0).all() and (curve["pixel"] > 0).all()
    assert curve["samples_per_second"].gt(0).all() and list(runs[0].glob(".*resume.pt")) == []
    levels = load_levels([runs[0] / "level0.pt", runs[0] / "level1.pt"])
    assert [s.level for s in levels] == [0, 1] and not any(p.requires_grad for p in levels[1].parameters())

    results = tmp_path / "results"
    for level in (0, 1):
        evaluate_video_level(
            [runs[0] / f"level{k}.pt" for k in range(level + 1)],
            bank_dir / "clips.zarr",
            bank_dir / "split.parquet",
            results / f"eval_L{level}.parquet",
            results / "video" / "ucf101" / f"reconstructions_L{level}.zarr",
            torch.device("cpu"),
            show=2,
        )
    metrics = pd.concat([pd.read_parquet(results / f"eval_L{level}.parquet") for level in (0, 1)])
    validation = pd.read_parquet(bank_dir / "split.parquet").query("split == 'validation'")
    assert len(metrics) == 2 * 2 * len(validation) and set(metrics["ratio"]) == {2, 4}
    wide = metrics.pivot_table(index=["level", "video"], columns="metric", values="value")
    np.testing.assert_allclose(wide["psnr"], 10 * np.log10(1 / wide["mse"]), rtol=1e-5)
    assert wide["mse"].between(0, 1).all()

    # per-frame PCA with as many numbers per clip as each level's memory (here 8 x 16 per 2^(l+1) frames)
    pca = evaluate_video_pca(bank_dir / "clips.zarr", bank_dir / "split.parquet", 128, 2, results / "pca.parquet")
    assert set(pca["model"]) == {"pca"} and set(pca["video"]) == set(validation["path"])
    pca_mse = pca[pca["metric"] == "mse"].groupby("level")["value"].mean()
    assert pca_mse[0] < pca_mse[1]  # 64 components per frame keep more than 32

    (results / "metrics").mkdir()
    pd.concat([metrics, pca]).to_parquet(results / "metrics" / "video.parquet")
    video_report(results)  # from results/ alone
    table = (results / "tables" / "table3_video.md").read_text()
    assert "| L0 | IMFN | 2:1 |" in table and "| L1 | IMFN | 4:1 |" in table and "0.000796 +/- 0.000551" in table
    assert "31.87 +/- 2.96" in table and "| L1 | per-frame PCA, same memory (32 components) | 4:1 |" in table
    assert (results / "figures" / "fig_video_reconstructions.png").stat().st_size > 5_000
    assert (results / "figures" / "fig_video_reconstructions.pdf").exists()


def test_a_linear_path_level_starts_as_the_pca_of_its_inputs_and_reads_back_through_its_own_frame_decoder(
    bank, tmp_path
):
    cfg = replace(TINY, architecture="mix")
    # untrained, level 0 is the joint PCA of its frame pairs: 8 x 16 = 128 of their 2 x 768 numbers, and back
    torch.manual_seed(0)
    level = FramePairLevel(cfg)
    pairs = torch.rand(300, 2, 3, 16, 16)
    level.init_from_data(pairs)
    fit = fit_pca(pairs.flatten(1))
    kept, mean = fit.components(128), fit.mean.float()
    x = pairs[:5].flatten(1)
    pca = ((x - mean) @ kept @ kept.T + mean).clamp(0, 1)
    roundtrip = torch.stack(level.invert(level.merge(pairs[:5, 0], pairs[:5, 1])), dim=1).flatten(1)
    torch.testing.assert_close(roundtrip, pca, atol=1e-4, rtol=0)
    # so is level 1 of its children's memories (pairs of 8 x 16 tokens)
    token_level = TokenLevel(cfg, 1)
    children = torch.randn(300, 2, 8, 16)
    token_level.init_from_data(children)
    fit = fit_pca(children.flatten(1))
    kept, mean = fit.components(128), fit.mean.float()
    x = children[:5].flatten(1)
    left, right = token_level.invert(token_level.merge(children[:5, 0], children[:5, 1]))
    torch.testing.assert_close(
        torch.stack([left, right], dim=1).flatten(1),
        (x - mean) @ kept @ kept.T + mean,
        atol=1e-4,
        rtol=0,
    )

    # trained, level 1 holds a frame decoder of its own, started as level 0's; its memories read back through it
    bank_dir, _ = bank
    for k in (0, 1):
        _train(bank_dir, k, tmp_path, cfg=cfg)
    levels = load_levels([tmp_path / "level0.pt", tmp_path / "level1.pt"])
    assert frame_decoder(levels[:1]) is levels[0].decoder and frame_decoder(levels) is levels[1].decoder
    own, below = levels[1].decoder.state_dict(), levels[0].decoder.state_dict()
    assert any(not torch.equal(own[name], below[name]) for name in own)
    clips = torch.rand(2, 4, 3, 16, 16)
    memory = encode(levels, clips)
    halves = levels[1].invert(memory)
    by_hand = torch.cat([torch.stack(levels[1].decoder.invert(half), dim=1) for half in halves], dim=1)
    torch.testing.assert_close(decode(levels, memory), by_hand)


def test_table3_is_mean_and_std_over_videos():
    rows = [
        {"model": "imfn-video", "dataset": "demo", "level": 0, "metric": m, "video": v, "value": x}
        for v, mse in (("a", 0.01), ("b", 0.03))
        for m, x in (("mse", mse), ("psnr", 10 * math.log10(1 / mse)))
    ]
    table = table3(pd.DataFrame(rows))
    assert "| L0 | IMFN | 2:1 | 2 | 0.020000 +/- 0.014142 | 17.61 +/- 3.37 |" in table


def test_a_non_finite_loss_stops_training_before_anything_is_written(bank, tmp_path, monkeypatch):
    bank_dir, _ = bank

    def nan_forward(self, frames, bits):
        z = self.net.merge(frames[:, 0], frames[:, 1])
        loss = self.net.invert(z)[0].mean() * float("nan")
        return loss, loss.detach(), loss.detach(), loss.detach()

    monkeypatch.setattr(LevelObjective, "forward", nan_forward)
    with pytest.raises(NonFiniteLossError, match="loss became nan"):
        _train(bank_dir, 0, tmp_path, epochs=1)
    assert not (tmp_path / "level0.pt").exists() and not (tmp_path / "level0_loss.parquet").exists()


def test_demo_footage_is_cut_into_many_short_clips():
    sources = list(demo_videos(DOWNLOADS, 16, segment_frames=16))
    assert len(sources) == 30  # 132, 250 and 120 frames -> 8 + 15 + 7 segments
    path, decode_segment = sources[0]
    assert path == "bigbuckbunny/bigbuckbunny_s000"
    video = decode_segment()
    assert video.frames.shape == (16, 16, 16, 3) and (video.width, video.height) == (1280, 720)


def test_a_video_shorter_than_its_header_says_is_truncated(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (40, 48, 64, 3), dtype=np.uint8)
    write_video(tmp_path / "v.mp4", noise)
    data = (tmp_path / "v.mp4").read_bytes()
    (tmp_path / "v.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception, match="truncated|unreadable"):
        decode_video(tmp_path / "v.mp4", 16)


def test_moving_mnist_clips_are_the_sources_sequences_grayscale_with_held_out_digits_for_validation(
    mnist_store, tmp_path
):
    """video.dataset moving_mnist: the vector tree's sequences as one-channel clips, validation from the test part
    (the first frames of the tree's held-out sequences), training through every level and its evaluation."""
    split = tmp_path / "split_digits.parquet"
    write_split(mnist_store, 0, 0.1, split)
    sequences = open_sequences("moving_mnist", mnist_store, split, 0)
    spec = ClipSpec(frame_size=64, clip_frames=8, seed=0)
    bank, manifest = tmp_path / "clips.zarr", tmp_path / "manifest.parquet"
    build_clip_bank("moving_mnist", spec, bank, manifest, sequences=sequences, clips=10, validation_fraction=0.2)
    clips = read_clips(bank)
    assert clips.shape == (10, 8, 64, 64, 1) and read_attrs(bank)["channels"] == 1
    frame = write_video_split(manifest, 0.5, tmp_path / "split.parquet").set_index("path")  # the part decides
    assert list(frame.index[frame["split"] == "validation"]) == ["test/000000", "test/000001"]
    rows = frame.loc[["test/000001", "train/000003"], "bank_index"].to_numpy()
    assert np.array_equal(clips[rows[0], ..., 0].reshape(8, -1), sequences.draw("test", 1, 1, 8)[0])
    assert np.array_equal(clips[rows[1], ..., 0].reshape(8, -1), sequences.draw("train", 3, 1, 8)[0])
    with pytest.raises(VideoDatasetError, match="frame_size=32"):
        build_clip_bank("moving_mnist", ClipSpec(32, 8, 0), tmp_path / "b.zarr", tmp_path / "m.parquet",
                        sequences=sequences, clips=10, validation_fraction=0.2)  # fmt: skip
    with pytest.raises(VideoDatasetError, match="0 held-out"):
        build_clip_bank("moving_mnist", spec, tmp_path / "b.zarr", tmp_path / "m.parquet", sequences=sequences,
                        clips=10, validation_fraction=0.01)  # fmt: skip
    assert not (tmp_path / "b.zarr").exists()

    cfg = VideoModelConfig(frame_size=64, patch=16, width=16, heads=2, memory_tokens=4, self_layers=1, mlp_ratio=2)
    hp = VideoTraining(seed=0, level=0, epochs=1, videos=8, pairs_per_video=1, batch_size=4)
    out = tmp_path / "level0.pt"
    train_video_level(
        hp, cfg, bank, tmp_path / "split.parquet", [], out, tmp_path / "loss.parquet", torch.device("cpu")
    )
    assert torch.load(out, weights_only=False)["config"]["channels"] == 1  # the bank's, not the default 3
    metrics = evaluate_video_level([out], bank, tmp_path / "split.parquet", tmp_path / "eval.parquet",
                                   tmp_path / "reconstructions.zarr", torch.device("cpu"))  # fmt: skip
    assert set(metrics["video"]) == {"test/000000", "test/000001"} and metrics["value"].notna().all()
    assert open_group(tmp_path / "reconstructions.zarr")["reconstruction"].shape == (2, 8, 64, 64, 1)


def test_table3_of_moving_mnist_sets_the_sources_tree_and_clip_pca_beside_each_level(tmp_path):
    """The video levels on moving_mnist beside that source's trees and clip PCA at the same d and window, read from
    results/metrics; a grid that lacks a level's window is named."""
    video = pd.DataFrame(
        [
            {"model": "imfn-video", "dataset": "moving_mnist", "seed": 0, "level": level, "dim": 256, "video": v,
             "metric": metric, "value": value}
            for level in (0, 1) for v in ("test/000000", "test/000001")
            for metric, value in (("mse", 0.02 + 0.01 * level), ("psnr", 17.0))
        ]
    )  # fmt: skip
    source = [
        {"source": "moving_mnist", "model": model, "variant": variant, "seed": seed, "dim": dim, "T": T,
         "position": None, "metric": metric, "value": value}
        for model, variant in (("imfn-teacher", "mix"), ("clip-pca", None), ("mean-frame", None))
        for seed in (0, 1) for dim in (256, 1024) for T in (2, 4)
        for metric, value in (("mse", 0.001 * T + 0.0001 * seed + (0.5 if dim == 1024 else 0)), ("psnr", 20.0))
    ]  # fmt: skip
    (tmp_path / "metrics").mkdir()
    frame = pd.DataFrame(source)
    frame[frame["model"] == "imfn-teacher"].to_parquet(tmp_path / "metrics" / "teacher.parquet")
    frame[frame["model"] != "imfn-teacher"].to_parquet(tmp_path / "metrics" / "clip_pca.parquet")
    references = sequence_references(tmp_path, "moving_mnist", 0, 256, [0, 1])
    table = table3(video, references)
    assert "| L0 | IMFN | 2:1 | 2 | 0.020000 +/- 0.000000 |" in table
    assert "| L1 | vector tree `mix` (moving_mnist, T = 4) | 4:1 | - | 0.004000 | 20.00 |" in table
    assert "| L0 | clip PCA, 256 components (moving_mnist, T = 2) | 2:1 | - | 0.002000 | 20.00 |" in table
    assert "mean frame" not in table
    with pytest.raises(ValueError, match=r"T = 8: the grid of sources.moving_mnist must cover video level 2"):
        sequence_references(tmp_path, "moving_mnist", 0, 256, [0, 1, 2])
