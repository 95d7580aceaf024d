"""The sequence compressors (Transformer and Mamba) on tiny sizes, CPU only, seconds to run."""

import math

import pytest
import torch
import torch.nn.functional as F

from imfn import provenance
from imfn.data.frame import MNIST_FRAME, FrameShape
from imfn.models import compressors
from imfn.models.checkpoint import FORMAT
from imfn.models.compressors import (
    MambaBlock,
    MambaCompressor,
    MambaConfig,
    ResidualMambaLayer,
    TransformerCompressor,
    TransformerConfig,
    choose_mamba_kernels,
    load_compressor,
    save_compressor,
    selective_scan,
)
from imfn.models.layers import parameter_count

D, T, N = 32, 8, 3
PIXELS = MNIST_FRAME.pixels  # the default frame: an MNIST digit


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def tiny(kind: str, frame_shape=MNIST_FRAME):
    torch.manual_seed(0)
    if kind == "transformer":
        return TransformerCompressor(TransformerConfig(D, T, frame_shape, layers=2, heads=4))
    return MambaCompressor(MambaConfig(D, T, frame_shape, layers=2, decoder_layers=2, heads=4), use_kernels=False)


def frames(n: int = N, t: int = T, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, t, PIXELS, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["transformer", "mamba"])
def test_shapes_and_bottleneck(kind):
    model = tiny(kind).eval()
    x = frames()
    with torch.no_grad():
        memory = model.encode(x)
        assert memory.shape == (N, D)  # the whole sequence goes through one d-vector
        decoded = model.decode(memory, T)
        assert decoded.shape == (N, T, PIXELS)
        assert decoded.min() >= 0 and decoded.max() <= 1
        # forward is encode then decode: nothing but the memory reaches the decoder
        torch.testing.assert_close(model(x), decoded, rtol=0, atol=0)
        # and the memory matters: another sequence's memory decodes to other frames
        assert not torch.allclose(model.decode(memory.roll(1, dims=0), T), decoded)
        assert model.decode(memory, T - 3).shape == (N, T - 3, PIXELS)
    with pytest.raises(ValueError):
        model.decode(memory, T + 1)


# Derived by reading mamba-ssm 2.2.4's sdist, mamba_ssm/modules/mamba_simple.py (class Mamba, defaults
# d_state=16, d_conv=4, expand=2, dt_rank="auto" = ceil(d_model / 16), bias=False, conv_bias=True) and
# mamba_ssm/modules/block.py (class Block: submodules `norm`, then `mixer`), for d_model = 32:
# d_inner = 64, dt_rank = 2. The norm is RMSNorm (mamba_ssm/models/config_mamba.py: rms_norm=True),
# whose mamba_ssm implementation (ops/triton/layer_norm.py) registers `bias` as None: weight only.
MAMBA_SSM_LAYOUT_D32 = {
    "in_proj.weight": (128, 32),
    "conv1d.weight": (64, 1, 4),
    "conv1d.bias": (64,),
    "x_proj.weight": (2 + 2 * 16, 64),
    "dt_proj.weight": (64, 2),
    "dt_proj.bias": (64,),
    "A_log": (64, 16),
    "D": (64,),
    "out_proj.weight": (32, 64),
}


def test_mamba_block_has_mamba_ssm_layout():
    block = MambaBlock(32)
    assert {k: tuple(v.shape) for k, v in block.state_dict().items()} == MAMBA_SSM_LAYOUT_D32
    layer = ResidualMambaLayer(32, d_state=16, rms_norm=True, use_kernels=False)
    expected = {"norm.weight": (32,)} | {f"mixer.{k}": v for k, v in MAMBA_SSM_LAYOUT_D32.items()}
    assert {k: tuple(v.shape) for k, v in layer.state_dict().items()} == expected
    # mamba_ssm's initialization: A = -[1..16] on every channel, D = 1, softplus(dt bias) in [1e-3, 0.1]
    torch.testing.assert_close(-torch.exp(block.A_log), -torch.arange(1.0, 17.0).repeat(64, 1))
    torch.testing.assert_close(block.D, torch.ones(64))
    dt = F.softplus(block.dt_proj.bias)
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001
    keys = set(tiny("mamba").state_dict())
    assert "layers.1.mixer.A_log" in keys and "layers.1.norm.weight" in keys and "norm_f.weight" in keys


def scan_inputs(n=2, length=37, e=5, s=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, z = torch.randn(n, length, e, generator=g), torch.randn(n, length, e, generator=g)
    dt = F.softplus(torch.randn(n, length, e, generator=g))
    A = -torch.rand(e, s, generator=g) * 2
    B, C = torch.randn(n, length, s, generator=g), torch.randn(n, length, s, generator=g)
    return x, dt, A, B, C, torch.randn(e, generator=g), z


def reference_scan(x, dt, A, B, C, D, z):
    """A loop over time written out scalar-by-state, the recurrence of mamba_ssm's selective_scan_ref."""
    n, length, e = x.shape
    h = torch.zeros(n, e, A.shape[1])
    ys = []
    for t in range(length):
        h = torch.exp(dt[:, t, :, None] * A) * h + dt[:, t, :, None] * B[:, t, None, :] * x[:, t, :, None]
        ys.append((h * C[:, t, None, :]).sum(-1) + D * x[:, t])
    return torch.stack(ys, dim=1) * F.silu(z)


def test_selective_scan_matches_sequential_reference():
    args = scan_inputs()
    torch.testing.assert_close(selective_scan(*args), reference_scan(*args), rtol=1e-5, atol=1e-5)


def test_selective_scan_gradients_match_reference():
    args = [a.double().requires_grad_() for a in scan_inputs()]
    ours = torch.autograd.grad(selective_scan(*args).square().sum(), args)
    theirs = torch.autograd.grad(reference_scan(*args).square().sum(), args)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


def test_mamba_block_matches_recurrent_step():
    """The block's full-sequence forward equals one token at a time through mamba_ssm's ``Mamba.step``
    (the recurrent path with a rolling conv state), transcribed here."""
    torch.manual_seed(0)
    block = MambaBlock(16, d_state=4)
    u = torch.randn(2, 11, 16)
    conv_state = torch.zeros(2, block.d_inner, block.d_conv)
    ssm_state = torch.zeros(2, block.d_inner, block.d_state)
    A = -torch.exp(block.A_log)
    outs = []
    with torch.no_grad():
        for t in range(u.shape[1]):
            x, z = block.in_proj(u[:, t]).chunk(2, dim=-1)
            conv_state = torch.cat([conv_state[:, :, 1:], x[:, :, None]], dim=-1)
            x = F.silu((conv_state * block.conv1d.weight[:, 0]).sum(-1) + block.conv1d.bias)
            dt, B, C = block.x_proj(x).split([block.dt_rank, block.d_state, block.d_state], dim=-1)
            dt = F.softplus(F.linear(dt, block.dt_proj.weight) + block.dt_proj.bias)
            ssm_state = ssm_state * torch.exp(dt[..., None] * A) + (x * dt)[..., None] * B[:, None]
            y = (ssm_state @ C[..., None])[..., 0] + block.D * x
            outs.append(block.out_proj(y * F.silu(z)))
        expected = torch.stack(outs, dim=1)
        torch.testing.assert_close(block(u), expected, rtol=1e-5, atol=1e-5)


def test_mamba_encoder_is_causal():
    model = tiny("mamba").eval()
    x = frames()
    changed = x.clone()
    t = 5
    changed[:, t] = torch.rand(N, PIXELS)
    with torch.no_grad():
        before, after = model.encode_sequence(x), model.encode_sequence(changed)
    torch.testing.assert_close(after[:, :t], before[:, :t], rtol=0, atol=0)
    assert (after[:, t:] - before[:, t:]).abs().amax(dim=(0, 2)).min() > 1e-6  # every later step sees it
    # the memory is the last step
    torch.testing.assert_close(model.encode(x), before[:, -1], rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["transformer", "mamba"])
def test_checkpoint_round_trip(kind, tmp_path):
    model = tiny(kind)
    x = frames()
    with torch.no_grad():
        model.train()
        assert not torch.equal(model(x), model(x))  # dropout is on in training: eval mode is what we compare
        model.eval()
        expected = model(x)
    save_compressor(tmp_path / "model.pt", model, source="mnist", epoch=3)
    torch.manual_seed(123)  # a fresh model would come out different
    loaded = load_compressor(tmp_path / "model.pt")
    assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)
    saved = torch.load(tmp_path / "model.pt", weights_only=False)
    assert (saved["kind"], saved["format"], saved["architecture"]) == ("imfn-compressor", FORMAT, kind)
    torch.save({"kind": "imfn-compressor", "model": kind, "state": saved["state"]}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="older layout .*rerun rule train_compressor"):  # no format: an old layout
        load_compressor(tmp_path / "old.pt")
    torch.save({"kind": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an imfn-compressor checkpoint .*holds something-else"):
        load_compressor(tmp_path / "other.pt")


PAPER = {"transformer": 182_558_480, "mamba": 186_855_184}
# Measured on these modules (pre-norm Transformer layers with final LayerNorms; Mamba with RMSNorm and a
# final norm_f). Both are 124-125 * 1024 below the paper: see the report that introduced this file.
MEASURED = {"transformer": 182_431_504, "mamba": 186_727_184}


@pytest.mark.parametrize("kind", ["transformer", "mamba"])
def test_paper_size_parameter_counts(kind):
    if kind == "transformer":
        model = TransformerCompressor(TransformerConfig(1024, 128, MNIST_FRAME))
    else:
        model = MambaCompressor(MambaConfig(1024, 128, MNIST_FRAME), use_kernels=False)
    count = parameter_count(model)
    assert count == MEASURED[kind], (
        f"{kind}: {count:,} parameters (expected {MEASURED[kind]:,}; paper {PAPER[kind]:,}, "
        f"difference to paper {PAPER[kind] - count:,} = {(PAPER[kind] - count) / 1024:g} * 1024)"
    )
    assert math.isclose(count, PAPER[kind], rel_tol=1e-3)


@pytest.mark.parametrize("kind", ["transformer", "mamba"])
def test_frames_of_another_shape_in_and_out_and_in_the_checkpoint(kind, tmp_path):
    model = tiny(kind, FrameShape(12, 20)).eval()
    x = torch.rand(N, T, 12 * 20, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert model(x).shape == (N, T, 12 * 20)
    save_compressor(tmp_path / "model.pt", model, source="moving_mnist")
    loaded = load_compressor(tmp_path / "model.pt")
    assert loaded.config.frame_shape == FrameShape(12, 20) and loaded.source == "moving_mnist"
    with pytest.raises(RuntimeError):  # frames of the wrong size do not fit the embedding
        model(frames())


def test_transformer_memory_depends_on_frame_order():
    """Without its positional embeddings the [CLS] output would be invariant to shuffling the frames."""
    model = tiny("transformer").eval()
    x = frames()
    with torch.no_grad():
        assert not torch.allclose(model.encode(x), model.encode(x.flip(1)), atol=1e-4)


def test_mamba_on_cuda_without_kernels_fails_unless_the_slow_scan_is_allowed(monkeypatch):
    monkeypatch.setattr(compressors, "mamba_kernels_problem", lambda: "`import mamba_ssm` failed: ImportError")
    with pytest.raises(RuntimeError, match="Mamba on CUDA without mamba-ssm's kernels .*allow_slow_mamba: true"):
        choose_mamba_kernels("cuda", allow_slow_scan=False)
    assert choose_mamba_kernels("cuda", allow_slow_scan=True) is False  # allowed: the pure-PyTorch scan
    provenance.start("mamba-choice")
    assert choose_mamba_kernels("cpu", allow_slow_scan=False) is False  # the CPU always scans in PyTorch
    assert provenance.finish(ok=True)["notes"] == {"mamba": "pure-PyTorch scan"}  # recorded in the job's record
    model = MambaCompressor(MambaConfig(16, 4, MNIST_FRAME, layers=1, decoder_layers=1, heads=2), use_kernels=False)
    assert model.implementation == "pure-PyTorch scan"
