"""The CUDA paths: run where torch can use a GPU, skipped elsewhere (the CPU paths are tested everywhere)."""

import pytest
import torch
import torch.nn.functional as F

from imfn.data.frame import MNIST_FRAME
from imfn.devices import (
    autocast,
    batch_size,
    configure_precision,
    describe_runtime,
    mamba_kernels_problem,
    place,
)
from imfn.models.compressors import MambaCompressor, MambaConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def cuda(monkeypatch, tmp_path):
    monkeypatch.setenv("IMFN_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    device, _ = place("cuda")
    yield device
    configure_precision(device, False)


def test_mixed_precision_runs_matmuls_in_bf16_and_float32_when_off(cuda):
    assert describe_runtime(cuda)["gpu"]
    x = torch.randn(64, 64, device=cuda)
    assert configure_precision(cuda, True) == "bf16 autocast, TF32 matmuls"
    assert torch.backends.cuda.matmul.allow_tf32
    with autocast():
        assert (x @ x).dtype == torch.bfloat16
    assert configure_precision(cuda, False) == "float32" and not torch.backends.cuda.matmul.allow_tf32
    with autocast():
        assert (x @ x).dtype == torch.float32
    assert batch_size(16, cuda) == 128


def test_a_sweeper_step_under_bf16_tracks_float32(cuda):
    from imfn.train.sweeper import LevelModel, SweeperTraining

    hp = SweeperTraining(seed=0, dim=256, level=0, epochs=1, batch_size=64)
    torch.manual_seed(0)
    model = LevelModel(hp, MNIST_FRAME).to(cuda)
    rows = [torch.randint(0, 256, (64, 784), dtype=torch.uint8, device=cuda) for _ in range(2)]
    noise = torch.randn(64, hp.dim, device=cuda)
    losses = {}
    for switch in (False, True):
        configure_precision(cuda, switch)
        with autocast():
            losses[switch] = model.loss(rows[0], rows[1], noise, hp)[0].float().item()
    assert losses[True] == pytest.approx(losses[False], rel=0.05)


@pytest.mark.skipif(bool(mamba_kernels_problem()), reason="mamba-ssm's kernels are not installed")
def test_mamba_kernels_match_the_pure_pytorch_scan(cuda):
    config = MambaConfig(64, 16, MNIST_FRAME, width=64, layers=2, decoder_layers=1, heads=4)
    torch.manual_seed(0)
    slow = MambaCompressor(config, use_kernels=False).to(cuda).eval()
    fast = MambaCompressor(config, use_kernels=True).to(cuda).eval()
    fast.load_state_dict(slow.state_dict())
    assert fast.implementation == "mamba-ssm CUDA kernels"
    frames = torch.rand(4, 16, 784, device=cuda)
    with torch.no_grad():
        assert F.mse_loss(fast(frames), slow(frames)).item() < 1e-6
