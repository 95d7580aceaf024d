"""End-to-end sequence compressors, the paper's baselines (method.md section 5).

Both squeeze T frames (of the source's frame shape, ``config.frame_shape``) into one d-dim memory and decode all T
frames back from it; the memory of shape (N, d) is the only path from input to output (the bottleneck).

- :class:`TransformerCompressor`: frame embedding, a learnable [CLS] token and learned positions,
  a Transformer encoder; memory = the [CLS] output.
- :class:`MambaCompressor`: the same frame embedding, a stack of Mamba (selective SSM) layers;
  memory = the last timestep's output.

Both decode with the same :class:`QueryDecoder`: learned per-timestep queries run through a
Transformer decoder that cross-attends to the single memory token, then a per-frame MLP to pixels.

The paper's models are ``width = d``. A smaller ``width`` (the CPU-sized quick config) keeps the
d-number bottleneck: the encoder's output is projected width -> d to form the memory, and the
decoder projects it back d -> width (:class:`Bottleneck`); at ``width = d`` both are identities.

The Mamba mixer is :class:`MambaBlock`, a pure-PyTorch copy of ``mamba_ssm.modules.mamba_simple.Mamba``
(mamba-ssm 2.2.4) with the same parameter names and shapes, so one checkpoint loads with or without
the CUDA kernels. On CUDA, when ``mamba_ssm`` imports, that module is used instead.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from imfn import provenance, registry
from imfn.data.frame import FrameShape
from imfn.devices import mamba_kernels_problem
from imfn.models.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


class FrameEmbedding(nn.Module):
    """Per-frame MLP pixels -> d: three linear layers, GELU between, hidden width d."""

    def __init__(self, pixels: int, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(pixels, dim), nn.GELU(), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames)


class FrameDecoder(nn.Module):
    """Per-frame MLP d -> pixels: three linear layers, GELU between, hidden width d, sigmoid output."""

    def __init__(self, dim: int, pixels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, pixels), nn.Sigmoid()
        )

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.net(codes)


# Pre-norm (norm_first=True) Transformer layers throughout: with post-norm, a 6+6 layer stack
# trained with a plain cosine schedule and no warmup (the paper gives none) is known to be fragile;
# pre-norm trains stably without warmup. Pre-norm stacks need a final LayerNorm, passed as ``norm``.
def transformer_encoder(dim: int, layers: int, heads: int, ffn_mult: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        dim, heads, ffn_mult * dim, dropout, activation="gelu", batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)


def transformer_decoder(dim: int, layers: int, heads: int, ffn_mult: int, dropout: float) -> nn.TransformerDecoder:
    layer = nn.TransformerDecoderLayer(
        dim, heads, ffn_mult * dim, dropout, activation="gelu", batch_first=True, norm_first=True
    )
    return nn.TransformerDecoder(layer, layers, norm=nn.LayerNorm(dim))


class Bottleneck(nn.Module):
    """width -> d (``down``, the memory) and d -> width (``up``); identities when width == d."""

    def __init__(self, width: int, dim: int):
        super().__init__()
        same = width == dim
        self.down = nn.Identity() if same else nn.Linear(width, dim)
        self.up = nn.Identity() if same else nn.Linear(dim, width)


class QueryDecoder(nn.Module):
    """Memory (N, d) -> frames (N, T, pixels): learned per-timestep queries (T, d) through a Transformer
    decoder cross-attending to the single memory token, then :class:`FrameDecoder` on every step."""

    def __init__(self, dim: int, T: int, pixels: int, layers: int, heads: int, ffn_mult: int, dropout: float):
        super().__init__()
        self.queries = nn.Parameter(0.02 * torch.randn(T, dim))
        self.transformer = transformer_decoder(dim, layers, heads, ffn_mult, dropout)
        self.frames = FrameDecoder(dim, pixels)

    def forward(self, memory: torch.Tensor, T: int) -> torch.Tensor:
        if len(self.queries) < T:
            raise ValueError(f"asked to decode {T} frames; this decoder has {len(self.queries)} queries")
        queries = self.queries[:T].expand(len(memory), -1, -1)
        return self.frames(self.transformer(queries, memory.unsqueeze(1)))


# -----------------------------------------------------------------------------
# Transformer


@dataclass(frozen=True)
class TransformerConfig:
    dim: int  # memory size d
    T: int
    frame_shape: FrameShape  # the frames: the sequence source's
    width: int | None = None  # model width; None: d, as the paper
    layers: int = 6  # encoder layers; the decoder has as many
    heads: int = 8
    ffn_mult: int = 4
    dropout: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "frame_shape", FrameShape.of(self.frame_shape))


class TransformerCompressor(nn.Module):
    architecture = "transformer"
    implementation = None  # one implementation on every device

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        c = config
        w = c.width or c.dim
        self.embed = FrameEmbedding(c.frame_shape.pixels, w)
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, w))
        self.positions = nn.Parameter(0.02 * torch.randn(c.T + 1, w))
        self.encoder = transformer_encoder(w, c.layers, c.heads, c.ffn_mult, c.dropout)
        self.bottleneck = Bottleneck(w, c.dim)
        self.decoder = QueryDecoder(w, c.T, c.frame_shape.pixels, c.layers, c.heads, c.ffn_mult, c.dropout)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (N, T, pixels) -> memory (N, d), the [CLS] output."""
        N, T, _ = frames.shape
        if T > self.config.T:
            raise ValueError(f"got {T} frames; this model has positions for {self.config.T}")
        x = torch.cat([self.cls.expand(N, -1, -1), self.embed(frames)], dim=1) + self.positions[: T + 1]
        return self.bottleneck.down(self.encoder(x)[:, 0])

    def decode(self, memory: torch.Tensor, T: int) -> torch.Tensor:
        return self.decoder(self.bottleneck.up(memory), T)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(frames), frames.shape[1])


# -----------------------------------------------------------------------------
# Mamba


def selective_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    z: torch.Tensor,
) -> torch.Tensor:
    """Mamba's selective scan, batch-first (mamba_ssm's ``selective_scan_ref`` with variable B, C).

    x, dt, z: (N, L, E), dt already softplus'ed; A: (E, S); B, C: (N, L, S); D: (E,).
    State h_t = exp(dt_t A) * h_{t-1} + dt_t B_t x_t (h_0 = 0), output y_t = C_t . h_t + D x_t, gated
    by silu(z_t).
    """
    decay = torch.exp(dt.unsqueeze(-1) * A)  # (N, L, E, S)
    inputs = (dt * x).unsqueeze(-1) * B.unsqueeze(2)  # (N, L, E, S)
    # unbind once: indexing decay[:, t] inside the loop would make backward scatter every step's
    # gradient into a zero tensor of the full (N, L, E, S) size, O(L^2) work.
    h = torch.zeros_like(inputs[:, 0])
    steps = []
    for decay_t, input_t in zip(decay.unbind(1), inputs.unbind(1), strict=True):
        h = decay_t * h + input_t
        steps.append(h)
    states = torch.stack(steps, dim=1)
    y = torch.einsum("nles,nls->nle", states, C) + x * D
    return y * F.silu(z)


class MambaBlock(nn.Module):
    """Pure-PyTorch Mamba mixer (B, L, d) -> (B, L, d) with the parameters of
    ``mamba_ssm.modules.mamba_simple.Mamba`` (names, shapes, initialization; bias=False, conv_bias=True)."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2):
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        E = self.d_inner

        self.in_proj = nn.Linear(d_model, 2 * E, bias=False)
        self.conv1d = nn.Conv1d(E, E, kernel_size=d_conv, groups=E, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(E, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, E, bias=True)
        self.out_proj = nn.Linear(E, d_model, bias=False)

        # mamba_ssm's initialization: dt_proj weight uniform in +-dt_rank**-0.5, and its bias the inverse
        # softplus of dt drawn log-uniformly in [0.001, 0.1]; A = -[1..S] per channel (S4D real), D = 1.
        std = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(E) * (math.log(0.1) - math.log(0.001)) + math.log(0.001)).clamp(min=1e-4)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(E, 1))
        self.D = nn.Parameter(torch.ones(E))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        L = hidden_states.shape[1]
        x, z = self.in_proj(hidden_states).chunk(2, dim=-1)  # (B, L, E) each
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :L].transpose(1, 2))  # causal depthwise conv
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(dt))
        A = -torch.exp(self.A_log.float())
        y = selective_scan(x, dt, A, B, C, self.D, z)
        return self.out_proj(y)


KERNELS = "mamba-ssm CUDA kernels"
SLOW_SCAN = "pure-PyTorch scan"


def choose_mamba_kernels(device: torch.device | str, allow_slow_scan: bool) -> bool:
    """Whether a Mamba model on ``device`` uses mamba-ssm's kernels: always on CUDA when they import; on
    the CPU never (they need CUDA). On CUDA without them the job fails, unless the config allows the
    pure-PyTorch scan (compressors.allow_slow_mamba), which is correct but many times slower. The choice
    is logged and recorded in the job's provenance (``notes.mamba``)."""
    use = torch.device(device).type == "cuda"
    problem = mamba_kernels_problem() if use else ""
    if problem and not allow_slow_scan:
        raise RuntimeError(
            f"Mamba on CUDA without mamba-ssm's kernels ({problem}). Install them (docs/gpu.md; "
            "`imfn doctor` checks), or set compressors.allow_slow_mamba: true to run the pure-PyTorch scan"
        )
    if problem:
        log.warning("Mamba on CUDA with the pure-PyTorch scan, as the config allows (%s)", problem)
        use = False
    log.info("Mamba implementation: %s", KERNELS if use else SLOW_SCAN)
    provenance.note("mamba", KERNELS if use else SLOW_SCAN)
    return use


def mamba_mixer(d_model: int, d_state: int, use_kernels: bool) -> nn.Module:
    if use_kernels:
        from mamba_ssm.modules.mamba_simple import Mamba

        return Mamba(d_model, d_state=d_state)
    return MambaBlock(d_model, d_state=d_state)


def norm_layer(dim: int, rms_norm: bool) -> nn.Module:
    # eps 1e-5 as mamba_ssm's create_block and RMSNorm; both have the same state_dict keys as theirs
    # (mamba_ssm's RMSNorm registers no bias, like torch's).
    return nn.RMSNorm(dim, eps=1e-5) if rms_norm else nn.LayerNorm(dim, eps=1e-5)


class ResidualMambaLayer(nn.Module):
    """x + mixer(norm(x)), with mamba_ssm ``Block``'s submodule names (``norm``, ``mixer``).

    mamba_ssm's Block carries the residual stream separately (Add -> Norm -> Mixer) to fuse kernels;
    as its own docstring says, that is the same model as this plain pre-norm residual.
    """

    def __init__(self, dim: int, d_state: int, rms_norm: bool, use_kernels: bool):
        super().__init__()
        self.norm = norm_layer(dim, rms_norm)
        self.mixer = mamba_mixer(dim, d_state, use_kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mixer(self.norm(x))


@dataclass(frozen=True)
class MambaConfig:
    dim: int  # memory size d
    T: int
    frame_shape: FrameShape  # the frames: the sequence source's
    width: int | None = None  # model width; None: d, as the paper
    layers: int = 12
    d_state: int = 16
    # mamba_ssm's MambaConfig defaults to RMSNorm (rms_norm=True); its Block/MixerModel default to LayerNorm.
    rms_norm: bool = True
    # the decoder, the same as the Transformer's
    decoder_layers: int = 6
    heads: int = 8
    ffn_mult: int = 4
    dropout: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "frame_shape", FrameShape.of(self.frame_shape))


class MambaCompressor(nn.Module):
    """``use_kernels`` builds the layers from ``mamba_ssm``'s CUDA Mamba (:func:`choose_mamba_kernels` decides),
    else from :class:`MambaBlock`; state_dict keys are the same either way, so a checkpoint loads on both."""

    architecture = "mamba"

    def __init__(self, config: MambaConfig, use_kernels: bool = False):
        super().__init__()
        self.config = config
        c = config
        self.use_kernels = use_kernels
        self.implementation = KERNELS if use_kernels else SLOW_SCAN
        w = c.width or c.dim
        self.embed = FrameEmbedding(c.frame_shape.pixels, w)
        self.layers = nn.ModuleList(
            ResidualMambaLayer(w, c.d_state, c.rms_norm, self.use_kernels) for _ in range(c.layers)
        )
        self.norm_f = norm_layer(w, c.rms_norm)  # final norm, as mamba_ssm's MixerModel
        self.bottleneck = Bottleneck(w, c.dim)
        self.decoder = QueryDecoder(w, c.T, c.frame_shape.pixels, c.decoder_layers, c.heads, c.ffn_mult, c.dropout)

    def encode_sequence(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (N, T, pixels) -> per-timestep states (N, T, width); causal in time."""
        x = self.embed(frames)
        for layer in self.layers:
            x = layer(x)
        return self.norm_f(x)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (N, T, pixels) -> memory (N, d), the last timestep's output."""
        return self.bottleneck.down(self.encode_sequence(frames)[:, -1])

    def decode(self, memory: torch.Tensor, T: int) -> torch.Tensor:
        return self.decoder(self.bottleneck.up(memory), T)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(frames), frames.shape[1])


# -----------------------------------------------------------------------------
# building and checkpoints


def compressor_class(name: str) -> type[TransformerCompressor] | type[MambaCompressor]:
    """The compressor architecture ``name`` (config ``compressors.models``: :data:`imfn.registry.COMPRESSORS`)."""
    return registry.lookup(registry.COMPRESSORS, name)


def build_compressor(config, device: torch.device | str = "cpu", allow_slow_mamba: bool = False):
    """The compressor ``config`` describes (a :class:`TransformerConfig` or :class:`MambaConfig`), on ``device``;
    Mamba's CUDA kernels only for a model that will run on CUDA (:func:`choose_mamba_kernels`)."""
    if isinstance(config, MambaConfig):
        return MambaCompressor(config, use_kernels=choose_mamba_kernels(device, allow_slow_mamba)).to(device)
    return TransformerCompressor(config).to(device)


TransformerCompressor.config_class = TransformerConfig
MambaCompressor.config_class = MambaConfig


def save_compressor(path, model: TransformerCompressor | MambaCompressor, **extra) -> None:
    save_checkpoint(path, "imfn-compressor", asdict(model.config), model.state_dict(),
                    architecture=model.architecture, **extra)  # fmt: skip


def load_compressor(
    path, device: torch.device | str = "cpu", allow_slow_mamba: bool = False
) -> TransformerCompressor | MambaCompressor:
    """A compressor from :func:`save_compressor`, in eval mode (Mamba: see :func:`choose_mamba_kernels`),
    with ``source``: the sequence source it was trained on."""
    saved = load_checkpoint(path, "imfn-compressor", device)
    model = build_compressor(compressor_class(saved["architecture"]).config_class(**saved["config"]), device,
                             allow_slow_mamba)  # fmt: skip
    model.load_state_dict(saved["state"])
    model.source = saved["source"]  # the sequence source it was trained on
    return model.eval()
