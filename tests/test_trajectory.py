"""Zero-padded teacher trajectories: the Merkle path against the naive rebuild, its cost, and TreeMemory."""

import math

import pytest
import torch

from imfn.data.frame import MNIST_FRAME
from imfn.models.architectures.pca import init_pair_from_pca
from imfn.models.memory import TreeMemory
from imfn.models.merkle import frames_separate, merkle_trajectory, naive_trajectory, separable_trajectory
from imfn.models.teacher import CodecConfig, Sweeper, SweeperConfig, Teacher, build_codec, build_sweeper
from imfn.models.tree import merge_up

N, D = 3, 12
LENGTHS = (2, 4, 8, 16, 32, 64)


def random_sweepers(architecture: str, levels: int, seed: int = 0) -> list[Sweeper]:
    torch.manual_seed(seed)
    return [build_sweeper(SweeperConfig.for_dim(D, architecture=architecture)).eval() for _ in range(levels)]


def pca_fitted_sweepers(levels: int, seed: int = 0) -> list[Sweeper]:
    """Sweepers set like trained pca-architecture ones: closed-form PCA merge/inverse on a bank of codes."""
    torch.manual_seed(seed)
    sweepers = []
    for _ in range(levels):
        sweeper = build_sweeper(SweeperConfig.for_dim(D, architecture="pca")).eval()
        codes = torch.randn(200, D) @ torch.randn(D, D) + torch.randn(D)
        init_pair_from_pca(sweeper.merge_net, sweeper.invert_net, codes)
        sweepers.append(sweeper)
    return sweepers


SWEEPER_KINDS = {
    "mlp": lambda levels: random_sweepers("mlp", levels),
    "pca-random": lambda levels: random_sweepers("pca", levels),
    "pca-fitted": pca_fitted_sweepers,
}


def leaves_and_zero(T: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(N, T, D, generator=generator), torch.randn(D, generator=generator)


@pytest.mark.parametrize("kind", sorted(SWEEPER_KINDS))
@pytest.mark.parametrize("T", LENGTHS)
def test_merkle_matches_naive_and_ends_at_the_full_root(kind, T):
    sweepers = SWEEPER_KINDS[kind](int(math.log2(T)))
    leaves, zero_leaf = leaves_and_zero(T)
    naive = naive_trajectory(sweepers, leaves, zero_leaf)
    merkle = merkle_trajectory(sweepers, leaves, zero_leaf)
    assert merkle.states.shape == (N, T + 1, D)
    torch.testing.assert_close(merkle.states, naive.states, atol=1e-5, rtol=1e-5)

    with torch.no_grad():
        zero_root = merge_up(sweepers, zero_leaf.expand(N, T, D))
        full_root = merge_up(sweepers, leaves)
    torch.testing.assert_close(merkle.states[:, 0], zero_root, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(merkle.states[:, T], full_root, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("T", [2, 4, 8])
def test_a_framewise_tree_trajectory_is_the_full_roots_frame_blocks_over_the_zero_roots(T):
    """Levels that map each frame on its own: y_t is one tree's first t frame blocks, the rest from the zero
    tree, equal to the Merkle path; trees that mix frames are refused."""
    dim = 32
    torch.manual_seed(0)
    sweepers = [build_sweeper(SweeperConfig.for_dim(dim, 16, "framewise", level=level)).eval() for level in range(3)]
    for sweeper in sweepers:  # switch the residual MLPs on: a nonlinear tree
        torch.nn.init.normal_(sweeper.merge_net.residual[-1].weight, std=0.3)
    leaves, zero_leaf = torch.randn(N, T, dim), torch.randn(dim)
    assert frames_separate(sweepers, T)
    fast = separable_trajectory(sweepers, leaves, zero_leaf)
    torch.testing.assert_close(fast.states, merkle_trajectory(sweepers, leaves, zero_leaf).states, atol=1e-5, rtol=1e-5)
    assert fast.merges == (T - 1) + int(math.log2(T))
    mlp = random_sweepers("mlp", 3)
    assert not frames_separate(mlp, T)
    with pytest.raises(ValueError, match="each frame on its own"):
        separable_trajectory(mlp, torch.randn(N, T, D), torch.randn(D))


@pytest.mark.parametrize("kind", sorted(SWEEPER_KINDS))
@pytest.mark.parametrize("T", LENGTHS)
def test_merkle_matches_naive_step_by_step_in_float64(kind, T):
    """Randomly initialized MLP sweepers shrink one leaf's effect on the root about tenfold per
    level, so at T >= 16 a single step moves the float32 root by less than 1e-5 and the float32
    comparison cannot see a wrong step. In float64 every step is resolved."""
    sweepers = [s.double() for s in SWEEPER_KINDS[kind](int(math.log2(T)))]
    leaves, zero_leaf = (x.double() for x in leaves_and_zero(T))
    naive = naive_trajectory(sweepers, leaves, zero_leaf).states
    merkle = merkle_trajectory(sweepers, leaves, zero_leaf).states
    torch.testing.assert_close(merkle, naive, atol=1e-12, rtol=1e-10)
    moved = (merkle[:, 1:] - merkle[:, :-1]).abs().amax(dim=-1) > 1e-9
    # Non-vacuous: steps must move the root. A ReLU layer whose units are all off passes no
    # change through, which happens for a rare step of a random MLP; linear sweepers always move.
    assert moved.double().mean() >= (0.95 if kind == "mlp" else 1.0)


def test_step_t_only_sees_the_first_t_leaves():
    T = 8
    sweepers = random_sweepers("mlp", 3)
    leaves, zero_leaf = leaves_and_zero(T)
    changed = leaves.clone()
    changed[:, 5:] += 1.0
    before = merkle_trajectory(sweepers, leaves, zero_leaf).states
    after = merkle_trajectory(sweepers, changed, zero_leaf).states
    torch.testing.assert_close(after[:, :6], before[:, :6])
    assert (after[:, 6:] - before[:, 6:]).abs().amax() > 1e-4


@pytest.mark.parametrize("T", LENGTHS)
def test_merge_counts(T):
    L = int(math.log2(T))
    sweepers = random_sweepers("pca", L)
    leaves, zero_leaf = leaves_and_zero(T)
    naive = naive_trajectory(sweepers, leaves, zero_leaf)
    merkle = merkle_trajectory(sweepers, leaves, zero_leaf)
    assert naive.merges == (T + 1) * (T - 1)
    assert merkle.merges == T * L + L
    if T == 64:
        assert merkle.merges == 390 and naive.merges == 4095
        assert naive.merges > 10 * merkle.merges


def pca_teacher(levels: int, seed: int = 0) -> Teacher:
    torch.manual_seed(seed)
    codec = build_codec(CodecConfig(D, MNIST_FRAME, 32, "pca"))
    codec.init_from_data(torch.rand(300, 784))
    return Teacher(codec, pca_fitted_sweepers(levels, seed)).eval()


@pytest.mark.parametrize("T", (2, 8, 16))
def test_tree_memory_state_follows_the_merkle_trajectory_and_recall_matches_reconstruct(T):
    L = int(math.log2(T))
    teacher = pca_teacher(L)
    frames = torch.rand(N, T, 784, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        leaves = teacher.encode_leaves(frames)
        zero_leaf = teacher.zero_leaf()
    expected = merkle_trajectory(teacher.sweepers, leaves, zero_leaf).states

    memory = TreeMemory(teacher, T, N)
    torch.testing.assert_close(memory.state, expected[:, 0])
    for t in range(T):
        memory.write(frames[:, t])
        torch.testing.assert_close(memory.state, expected[:, t + 1], atol=1e-5, rtol=1e-5)
        if t == 0:
            assert memory.reconstruct().shape == (N, 1, 784)
    assert memory.merges == T * L + L

    full = memory.reconstruct()
    assert full.shape == (N, T, 784)
    torch.testing.assert_close(full, teacher.roundtrip(frames), atol=1e-5, rtol=1e-5)
    for t in range(T):
        inverts = memory.inverts
        frame = memory.recall(t)
        assert memory.inverts - inverts == L
        torch.testing.assert_close(frame, full[:, t], atol=1e-5, rtol=1e-5)
    # Different frames come back different (recall really follows the path to leaf t).
    assert (memory.recall(0) - memory.recall(T - 1)).abs().amax() > 1e-3


def test_tree_memory_refuses_unwritten_frames_and_overflow():
    teacher = pca_teacher(1)
    memory = TreeMemory(teacher, 2, N)
    memory.write(torch.rand(N, 784))
    with pytest.raises(IndexError):
        memory.recall(1)
    memory.write(torch.rand(N, 784))
    with pytest.raises(IndexError):
        memory.write(torch.rand(N, 784))


@pytest.mark.parametrize("T", (4, 8))
def test_student_memory_is_the_same_interface_with_one_network_step_per_frame(T):
    from imfn.models.memory import StudentMemory
    from imfn.models.student import StudentConfig, build_student

    L = int(math.log2(T))
    teacher = pca_teacher(L)
    torch.manual_seed(3)
    student = build_student(StudentConfig(D, T, 16, "positional")).eval()
    frames = torch.rand(N, T, 784, generator=torch.Generator().manual_seed(4))
    memory = StudentMemory(teacher, student, N)
    tree = TreeMemory(teacher, T, N)
    torch.testing.assert_close(memory.state, tree.state)  # both start from y_0, the all-zero root
    with torch.no_grad():
        expected = student.rollout(memory.state, teacher.encode_leaves(frames))
    for t in range(T):
        memory.write(frames[:, t])
        torch.testing.assert_close(memory.state, expected[:, t + 1])
    assert memory.merges == 0  # the student never touches the tree to write
    full = memory.reconstruct()
    for t in range(T):
        inverts = memory.inverts
        torch.testing.assert_close(memory.recall(t), full[:, t], atol=1e-5, rtol=1e-5)
        assert memory.inverts - inverts == L
    with pytest.raises(IndexError):
        memory.write(frames[:, 0])


def test_read_only_memory_reads_a_given_state_back_like_the_memory_that_wrote_it():
    from imfn.models.memory import ReadOnlyMemory

    T = 8
    teacher = pca_teacher(3)
    frames = torch.rand(N, T, 784, generator=torch.Generator().manual_seed(5))
    tree = TreeMemory(teacher, T, N)
    for t in range(3):
        tree.write(frames[:, t])
    stored = ReadOnlyMemory(teacher, T, tree.state.clone(), 3)
    torch.testing.assert_close(stored.reconstruct(), tree.reconstruct(), atol=0, rtol=0)
    assert stored.reconstruct().shape == (N, 3, 784)
    with pytest.raises(TypeError, match="read back only"):
        stored.write(frames[:, 3])
    with pytest.raises(ValueError, match="holds 0..8 frames, not 9"):
        ReadOnlyMemory(teacher, T, tree.state, 9)
