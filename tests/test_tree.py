"""Teacher modules and the tree: shapes, parameter count, and the order of merges and inversions."""

import pytest
import torch

from imfn.data.frame import MNIST_FRAME
from imfn.models.architectures.framewise import blocks
from imfn.models.teacher import CodecConfig, SweeperConfig, build_codec, build_sweeper, teacher_parameter_count
from imfn.models.tree import depth_for, invert_down, merge_up


class PositionalSweeper:
    """An exactly invertible stand-in merge on scalars: (a, b) -> a * base + b.

    It makes the tree's bookkeeping checkable: the root spells out the leaves in order
    and inverting it must give them back at their own positions.
    """

    def __init__(self, base: float):
        self.base = base

    def merge(self, a, b):
        return a * self.base + b

    def invert(self, z):
        a = torch.floor(z / self.base)
        return a, z - a * self.base


def test_root_encodes_leaves_in_order_and_inversion_restores_positions():
    T = 8
    leaves = torch.tensor([[[3.0], [1.0], [4.0], [1.0], [5.0], [9.0], [2.0], [6.0]]], dtype=torch.float64)
    sweepers = [PositionalSweeper(10.0), PositionalSweeper(100.0), PositionalSweeper(10_000.0)]
    root = merge_up(sweepers, leaves)
    assert root.item() == 31415926
    torch.testing.assert_close(invert_down(sweepers, root, T), leaves)


def test_depth_rejects_lengths_that_are_not_powers_of_two():
    assert depth_for(256) == 8
    for bad in (0, 1, 3, 12):
        with pytest.raises(ValueError, match="power of two"):
            depth_for(bad)


def test_paper_size_teacher_parameter_count():
    # d=1024, codec hidden 1024, merge/inverter hidden d, 9 sweepers; the paper reports 61.43M.
    assert teacher_parameter_count(1024, 9, MNIST_FRAME) == 62_475_024


def test_pca_merge_of_codes_within_its_top_components_is_exactly_invertible():
    from imfn.models.architectures.pca import init_pair_from_pca

    generator = torch.Generator().manual_seed(0)
    codes = torch.randn(4000, 4, generator=generator) @ torch.randn(4, 8, generator=generator)  # rank 4 = d/2
    sweeper = build_sweeper(SweeperConfig.for_dim(8, architecture="pca"))
    init_pair_from_pca(sweeper.merge_net, sweeper.invert_net, codes)
    a, b = codes[:50], codes[50:100]
    left, right = sweeper.invert(sweeper.merge(a, b))
    torch.testing.assert_close(left, a, atol=1e-4, rtol=0)
    torch.testing.assert_close(right, b, atol=1e-4, rtol=0)


def test_pca_teacher_parameter_count():
    # linear sweepers (2 x 2d x d) and codec, plus one depth decoder per level
    assert teacher_parameter_count(1024, 9, MNIST_FRAME, architecture="pca", decoder_hidden=512) == 50_090_656


def test_sweeper_and_codec_shapes():
    sweeper = build_sweeper(SweeperConfig.for_dim(32))
    a, b = torch.randn(5, 32), torch.randn(5, 32)
    z = sweeper.merge(a, b)
    left, right = sweeper.invert(z)
    assert z.shape == left.shape == right.shape == (5, 32)
    codec = build_codec(CodecConfig(32, MNIST_FRAME, 64))
    images = codec.decode(codec.encode(torch.rand(5, 784)))
    assert images.shape == (5, 784) and images.min() >= 0 and images.max() <= 1


def test_a_framewise_level_maps_each_frame_of_its_children_on_its_own():
    # level 1 at d=16: each child holds 2 frames of 8 numbers; the merge keeps 4 of each, in sequence order
    sweeper = build_sweeper(SweeperConfig.for_dim(16, 32, "framewise", level=1))
    torch.nn.init.normal_(sweeper.merge_net.residual[-1].weight)  # a nonlinear map, not just its linear start
    torch.nn.init.normal_(sweeper.invert_net.residual[-1].weight)
    assert blocks(sweeper.config) == 2 and sweeper.frames_separate
    left, right = torch.randn(3, 16), torch.randn(3, 16)
    merged = sweeper.merge(left, right)
    moved = left.clone()
    moved[:, 8:] += 1.0  # frame 2 of 4 changes
    changed = (sweeper.merge(moved, right) != merged).any(dim=0)
    assert changed[4:8].all() and not changed[:4].any() and not changed[8:].any()
    inverted = torch.cat(sweeper.invert(merged), dim=-1)
    bumped = merged.clone()
    bumped[:, 12:] += 1.0  # frame 4's share
    assert ((torch.cat(sweeper.invert(bumped), dim=-1) != inverted).any(dim=0) == (torch.arange(32) >= 24)).all()
    # past one number per frame the blocks span frames: level 8 at d=64 cuts a child into 32 blocks of 2
    assert blocks(SweeperConfig.for_dim(64, None, "framewise", level=8)) == 32
    with pytest.raises(ValueError, match="does not split"):
        build_sweeper(SweeperConfig.for_dim(12, 8, "framewise", level=2))


def test_invert_path_gives_the_nodes_invert_down_gives_on_one_root_to_leaf_path():
    from imfn.models.tree import invert_path

    torch.manual_seed(0)
    T, dim = 8, 6
    sweepers = [build_sweeper(SweeperConfig.for_dim(dim, 12)).eval() for _ in range(3)]
    roots, positions = torch.randn(T, dim), torch.arange(T).flip(0)
    with torch.no_grad():
        nodes = invert_path(sweepers, roots, positions, T)
        leaves = invert_down(sweepers, roots, T)
    assert len(nodes) == 3 and all(node.shape == (T, dim) for node in nodes)
    torch.testing.assert_close(nodes[-1], leaves[torch.arange(T), positions])
    with torch.no_grad():  # the top node: the root's left or right child by the position's highest bit
        left, right = sweepers[2].invert(roots)
    torch.testing.assert_close(nodes[0], torch.where((positions >= 4)[:, None], right, left))


def test_a_mix_merge_keeps_what_adjacent_children_share_where_the_pca_merge_cannot():
    # right children are their left sibling plus a little noise: together they hold about d numbers, not 2d
    generator = torch.Generator().manual_seed(0)
    d = 16
    left = torch.randn(4000, d, generator=generator) * torch.linspace(2.0, 0.5, d)
    pairs = torch.stack([left, left + 0.05 * torch.randn(4000, d, generator=generator)], dim=1)
    errors = {}
    for architecture in ("pca", "mix"):
        sweeper = build_sweeper(SweeperConfig.for_dim(d, 32, architecture))
        sweeper.init_from_data(pairs)
        with torch.no_grad():
            back = torch.stack(sweeper.invert(sweeper.merge(pairs[:, 0], pairs[:, 1])), dim=1)
        errors[architecture] = (back - pairs).pow(2).mean().item()
    # pca keeps each child's top d/2 components; mix keeps the pair's top d: nearly all of it
    assert errors["mix"] < 0.01 < 0.1 < errors["pca"]
