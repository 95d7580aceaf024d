import math

import pytest
import torch

from imfn.eval.metrics import mse_per_frame, psnr, ssim_per_frame


def test_mse_and_psnr_against_hand_computed_values():
    target = torch.zeros(2, 3, 784)
    reconstruction = torch.full((2, 3, 784), 0.1)
    mse = mse_per_frame(reconstruction, target)
    torch.testing.assert_close(mse, torch.full((2, 3), 0.01))
    torch.testing.assert_close(psnr(mse), torch.full((2, 3), 20.0))
    assert math.isclose(psnr(torch.tensor(0.052132)).item(), 12.83, abs_tol=0.01)  # paper's Table 1 pair


def test_ssim_is_one_for_identical_frames_and_drops_with_noise():
    generator = torch.Generator().manual_seed(0)
    frames = torch.rand(4, 784, generator=generator)
    torch.testing.assert_close(ssim_per_frame(frames, frames), torch.ones(4))
    noisy = (frames + 0.3 * torch.randn(4, 784, generator=generator)).clamp(0, 1)
    values = ssim_per_frame(noisy, frames)
    assert values.shape == (4,) and (values < 0.9).all()


def test_ssim_equals_torchmetrics_standard_ssim():
    from torchmetrics.functional.image import structural_similarity_index_measure

    generator = torch.Generator().manual_seed(1)
    frames = torch.rand(64, 784, generator=generator)
    blurred = (frames + 0.2 * torch.randn(64, 784, generator=generator)).clamp(0, 1)
    expected = structural_similarity_index_measure(
        blurred.reshape(-1, 1, 28, 28), frames.reshape(-1, 1, 28, 28), data_range=1.0, reduction="none"
    )
    torch.testing.assert_close(ssim_per_frame(blurred, frames), expected, atol=1e-5, rtol=0)


def test_ssim_on_the_frame_shape_of_each_source_equals_torchmetrics():
    from torchmetrics.functional.image import structural_similarity_index_measure

    from imfn.data.source import source

    generator = torch.Generator().manual_seed(2)
    moving = source("moving_mnist").frame_shape
    for height, width in [(moving.height, moving.width), (20, 36)]:
        frames = torch.rand(6, height * width, generator=generator)
        noisy = (frames + 0.2 * torch.randn(6, height * width, generator=generator)).clamp(0, 1)
        expected = structural_similarity_index_measure(
            noisy.reshape(-1, 1, height, width), frames.reshape(-1, 1, height, width), data_range=1.0, reduction="none"
        )
        torch.testing.assert_close(ssim_per_frame(noisy, frames, (height, width)), expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="frames of 720 pixels are not square"):
        ssim_per_frame(frames, frames)
    with pytest.raises(ValueError, match="frames of 720 pixels are not 28x28"):
        ssim_per_frame(frames, frames, (28, 28))
