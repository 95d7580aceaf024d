"""`imfn doctor`: what this machine gives the pipeline (torch, CUDA, GPUs, Mamba's kernels, video decoding,
SLURM) and, for each gap, what to do about it. Run it on the node the jobs run on (a GPU node, not the
login node), e.g. `srun --gpus=1 imfn doctor`.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _nvidia_smi() -> str | None:
    """The driver version and GPUs as nvidia-smi reports them, or None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"failed: {exc}"
    return done.stdout.strip() or done.stderr.strip()


def checks() -> tuple[list[tuple[str, str]], list[str]]:
    """(what was found, as (name, value) rows; what to fix, one line each)."""
    import torch

    from imfn.devices import cuda_problem, mamba_kernels_problem

    found: list[tuple[str, str]] = []
    fixes: list[str] = []
    found.append(("python", platform.python_version()))
    found.append(("torch", f"{torch.__version__} (built for CUDA {torch.version.cuda or 'none: a CPU-only build'})"))
    smi = _nvidia_smi()
    found.append(("nvidia-smi", smi or "not found (no NVIDIA driver on this machine)"))
    cuda = torch.cuda.is_available()
    found.append(("CUDA usable by torch", "yes" if cuda else "no"))
    if cuda:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            found.append(
                (f"GPU {i}", f"{p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}")
            )
        found.append(("bf16 (mixed_precision)", "supported" if torch.cuda.is_bf16_supported() else "not supported"))
        if not torch.cuda.is_bf16_supported():
            fixes.append("this GPU has no bf16: set mixed_precision: false in the config")
    elif smi:  # an NVIDIA driver, but torch cannot use it
        fixes.append(cuda_problem())
    mamba, conv = _version("mamba-ssm"), _version("causal-conv1d")
    found.append(("mamba-ssm", mamba or "not installed"))
    found.append(("causal-conv1d", conv or "not installed"))
    problem = mamba_kernels_problem() if cuda else ""
    if cuda:
        found.append(("Mamba implementation on CUDA", f"none: {problem}" if problem else "mamba-ssm CUDA kernels"))
        if problem:
            fixes.append(
                "Mamba jobs on CUDA will fail without mamba-ssm's kernels: build mamba-ssm and causal-conv1d against "
                "this torch (docs/gpu.md), or set compressors.allow_slow_mamba: true"
            )
    else:
        found.append(("Mamba implementation", "pure-PyTorch scan (the CPU path; the kernels need CUDA)"))
    found.append(("av (video decoding)", _version("av") or "not installed"))
    found.append(("snakemake", _version("snakemake") or "not installed"))
    found.append(("snakemake-executor-plugin-slurm", _version("snakemake-executor-plugin-slurm") or "not installed"))
    found.append(("sbatch", shutil.which("sbatch") or "not found (no SLURM client here)"))
    if os.environ.get("SLURM_JOB_ID"):
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        found.append(("SLURM job", f"{os.environ['SLURM_JOB_ID']}, CUDA_VISIBLE_DEVICES={visible}"))
        if visible and not cuda:
            fixes.append("this SLURM job was given a GPU that torch cannot use: GPU jobs here will fail (see above)")
    return found, fixes


def report() -> str:
    found, fixes = checks()
    width = max(len(name) for name, _ in found)
    lines = [f"{name:<{width}}  {value}" for name, value in found]
    lines.append("")
    lines += [f"fix: {line}" for line in fixes] or ["nothing to fix for what this machine is used for"]
    return "\n".join(lines)
