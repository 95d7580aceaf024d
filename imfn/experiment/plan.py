"""The experiment a config describes, as typed objects: what runs, on which sources, at which sizes, and whether it
can run at all, decided once, before any job (the Snakefile builds one; the tests build them in milliseconds).

- :attr:`Experiment.sources`: a :class:`SourceGrid` per sequence source of config ``sources``, every key unset there
  taken from the top-level grid; its kind (:class:`~imfn.data.source.SequenceSource`, from the registry) says its
  frame shape and the roles the reports give it.
- :meth:`Experiment.teacher_settings` / :meth:`Experiment.student_settings`: a variant's hyperparameters, its
  overrides deep-merged over the base block (``teacher.training``, ``student.training``): one merge rule.
- :attr:`Experiment.students`, :attr:`Experiment.compressors`: the sources each runs on, at their d and T.
- :attr:`Experiment.video`: the video branch (its dataset, memory, the sequence source it reads, or why it is left
  out).
- :meth:`Experiment.check`: every cross-field rule the schema cannot say, each a :class:`ConfigError` naming the
  key.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from imfn import registry
from imfn.data.sequences import check_canonical
from imfn.data.source import SequenceSource, source
from imfn.experiment.config import ConfigError, check_config, deep_merge
from imfn.models.video_config import VideoModelConfig

FOOTAGE = ("ucf101", "demo")  # video datasets of real footage; any other video.dataset is a sequence source
STRIP_T = 32  # the clip length of a source's strip figure (or its longest T)


def depth(T: int) -> int:
    """The tree levels a sequence of T frames goes through."""
    return int(math.log2(T))


@dataclass(frozen=True)
class SourceGrid:
    """One sequence source as the experiment runs it: config ``sources.<name>`` over the top-level grid."""

    name: str
    kind: SequenceSource
    seeds: tuple[int, ...]
    dims: tuple[int, ...]
    T: tuple[int, ...]
    levels: int
    variant: str  # its default teacher
    variants: tuple[str, ...]  # every teacher variant trained and reported on it, its default first
    canonical_test: str | None

    def cells(self, variants=None, dims=None, seeds=None) -> list[dict]:
        """(source, seed, dim, variant) of every teacher cell, over the grid or the given parts of it."""
        return [dict(source=self.name, seed=s, dim=d, variant=v) for v in variants or self.variants
                for s in seeds or self.seeds for d in dims or self.dims]  # fmt: skip

    def level_cells(self, variants=None, dims=None, seeds=None) -> list[dict]:
        """:meth:`cells` with each of the source's levels (every level, even one no evaluated T reaches)."""
        return [{**c, "level": level} for c in self.cells(variants, dims, seeds) for level in range(self.levels)]

    def T_cells(self, variants=None, dims=None, seeds=None) -> list[dict]:
        """:meth:`cells` at each evaluated T."""
        return [{**c, "T": T} for c in self.cells(variants, dims, seeds) for T in self.T]

    @property
    def strip(self) -> dict:
        """The cell the source's strip figure shows: its first seed and d, at ``STRIP_T`` frames (or its longest T),
        with the per-frame references' k = d // T there (at most a frame's pixels)."""
        seed, dim, T = self.seeds[0], self.dims[0], STRIP_T if STRIP_T in self.T else max(self.T)
        return {"seed": seed, "dim": dim, "T": T, "k": min(dim // T, self.kind.frame_shape.pixels)}


@dataclass(frozen=True)
class StudentGrid:
    """The students of one source's teacher (its default variant) at its student d: config ``student.sources``."""

    source: str
    dim: int
    T: tuple[int, ...]
    train: tuple[str, ...]  # the student variants trained


@dataclass(frozen=True)
class CompressorGrid:
    """The compressors on one source: config ``compressors.sources``, at one d and T."""

    source: str
    dim: int
    T: int


@dataclass(frozen=True)
class VideoPlan:
    """The video branch: config ``video``. ``sequence_source``: the sequence source whose sequences are its clips
    (video.dataset names one), else None (footage). ``left_out``: why the branch cannot run here (None: it can)."""

    dataset: str
    memory: int  # numbers one memory holds: memory_tokens x width
    levels: int
    sequence_source: str | None
    left_out: str | None

    @property
    def windows(self) -> list[int]:
        """Frames one memory of each level holds."""
        return [2 ** (level + 1) for level in range(self.levels)]


class Experiment:
    """The experiment of one merged config (see the module's text)."""

    def __init__(self, config: Mapping):
        self.config = config
        teacher = config["teacher"]
        self.sources = {name: self._source_grid(name, entry or {}) for name, entry in config["sources"].items()}
        self.students = {
            name: self._student_grid(name, entry or {}) for name, entry in config["student"]["sources"].items()
        }
        compressors = config["compressors"]
        self.compressors = {
            name: CompressorGrid(name, *((entry or {}).get(key, compressors[key]) for key in ("dim", "T")))
            for name, entry in compressors["sources"].items()
        } if compressors["models"] else {}  # fmt: skip
        self.teacher_levels = teacher["levels"]
        self.video = self._video_plan(config["video"])

    @classmethod
    def from_config(cls, config: Mapping) -> Experiment:
        """Renamed keys, the schema, then every check of :meth:`check`: a :class:`ConfigError` on the first
        that fails."""
        check_config(config)
        experiment = cls(config)
        experiment.check()
        return experiment

    # --- what runs ----------------------------------------------------------------------------------

    def _source_grid(self, name: str, entry: Mapping) -> SourceGrid:
        config = self.config
        variant = entry.get("teacher_variant", config["teacher"]["variant"])
        return SourceGrid(
            name=name,
            kind=self._kind(name, "sources"),
            seeds=tuple(entry.get("seeds", config["seeds"])),
            dims=tuple(entry.get("dims", config["dims"])),
            T=tuple(entry.get("T", config["evaluation"]["T"])),
            levels=entry.get("levels", config["teacher"]["levels"]),
            variant=variant,
            variants=(variant, *(v for v in entry.get("variants", []) if v != variant)),
            canonical_test=entry.get("canonical_test"),
        )

    def _student_grid(self, name: str, entry: Mapping) -> StudentGrid:
        student = self.config["student"]
        setting = {key: entry.get(key, student[key]) for key in ("dim", "T", "train")}
        return StudentGrid(name, setting["dim"], tuple(setting["T"]), tuple(setting["train"]))

    @staticmethod
    def _kind(name: str, key: str) -> SequenceSource:
        if name not in registry.SOURCES:
            raise ConfigError(f"config {key} names {name!r}; the registered sequence sources are "
                              f"{sorted(registry.SOURCES)} (imfn/registry.py)")  # fmt: skip
        return source(name)

    @property
    def paper(self) -> SourceGrid | None:
        """The grid of the source the paper's figures, Tables 1-2, the ablation and the paper sweep are of (None
        when the config does not run it: those are then not planned)."""
        return next((grid for grid in self.sources.values() if grid.kind.paper_figures), None)

    @property
    def moving_sources(self) -> list[str]:
        """The sources whose frames share content: clip PCA, the mean frame and a report of their own."""
        return [name for name, grid in self.sources.items() if grid.kind.frames_share_content]

    def teacher_settings(self, variant: str) -> dict:
        """A teacher variant's hyperparameters: ``teacher.training`` with its overrides deep-merged in."""
        return deep_merge(self.config["teacher"]["training"], self.config["teacher"]["variants"][variant])

    def student_settings(self, variant: str) -> dict:
        """A student variant's hyperparameters: ``student.training`` with its overrides deep-merged in."""
        return deep_merge(self.config["student"]["training"], self.config["student"]["variants"][variant])

    def autoencoder_ks(self, name: str, dims=None, Ts=None) -> list[int]:
        """The per-frame references keep k = d // T numbers per frame (at most a frame's pixels; k = 0 is the mean
        frame, which per-frame PCA shows): one per-frame autoencoder per (source, seed, k)."""
        grid = self.sources[name]
        pixels = grid.kind.frame_shape.pixels
        return sorted({min(d // T, pixels) for d in dims or grid.dims for T in Ts or grid.T} - {0})

    # --- the cells of each kind of job, as wildcard values ---------------------------------------------

    def seed_cells(self, sources=None) -> list[dict]:
        """(source, seed) for every seed of each of ``sources`` (unset: all)."""
        return [{"source": name, "seed": seed} for name in sources or self.sources for seed in self.sources[name].seeds]

    def autoencoder_cells(self) -> list[dict]:
        """(source, seed, k) of every per-frame autoencoder."""
        return [{**cell, "k": k} for cell in self.seed_cells() for k in self.autoencoder_ks(cell["source"])]

    def student_cells(self) -> list[dict]:
        """(source, seed, dim, variant, T, student_variant) of every student: each student source's seeds x its
        student T x its trained variants, for the source's teacher at its student d."""
        return [{"source": name, "seed": seed, "dim": grid.dim, "variant": self.sources[name].variant, "T": T,
                 "student_variant": variant} for name, grid in self.students.items()
                for seed in self.sources[name].seeds for T in grid.T for variant in grid.train]  # fmt: skip

    def compressor_cells(self, sources=None) -> list[dict]:
        """(source, seed, dim, model) of every compressor on each of ``sources`` (unset: all of theirs)."""
        compressors = self.config["compressors"]
        return [{"source": name, "seed": seed, "dim": self.compressors[name].dim, "model": model}
                for name in sources or self.compressors for seed in compressors["seeds"]
                for model in compressors["models"]]  # fmt: skip

    def _video_plan(self, video: Mapping) -> VideoPlan:
        model = video["model"]
        dataset = video["dataset"]
        sequence_source = None if dataset in FOOTAGE else dataset
        left_out = None
        if dataset == "ucf101" and video["root"] and not os.path.isdir(video["root"]):
            left_out = (
                f"video.root: {video['root']} is not a directory, so the video branch (Table 3) is left out. "
                "To include it, put UCF-101 there (<root>/<Class>/v_<Class>_gXX_cYY.avi) or point video.root at it "
                "in a --configfile; `video: {dataset: demo}` runs the branch on the demo footage instead.")
        return VideoPlan(dataset, model["memory_tokens"] * model["width"], video["levels"], sequence_source, left_out)

    # --- the checks ---------------------------------------------------------------------------------

    def check(self) -> None:
        """Every cross-field rule, in the order a reader fixes them: the teacher variants, the sources, the
        students, the compressors, the video branch."""
        self._check_teacher()
        self._check_sources()
        self._check_students()
        self._check_compressors()
        self._check_video()

    def _check_teacher(self) -> None:
        teacher = self.config["teacher"]
        used = {teacher["variant"], *(v for g in self.sources.values() for v in g.variants),
                *self.config["ablation"]["variants"], *self.config["paper_sweep"]["variants"]}  # fmt: skip
        unknown = sorted(used - set(teacher["variants"]))
        if unknown:
            raise ConfigError(f"config names teacher variants {unknown} that teacher.variants does not define "
                              f"(defined: {sorted(teacher['variants'])})")  # fmt: skip
        for name in teacher["variants"]:
            settings = self.teacher_settings(name)
            if settings["architecture"] not in registry.TEACHER_ARCHITECTURES:
                raise ConfigError(f"config teacher.variants.{name}.architecture: {settings['architecture']!r} is no "
                                  f"registered teacher architecture ({sorted(registry.TEACHER_ARCHITECTURES)})")
            epochs = settings["epochs"]
            if isinstance(epochs, list) and len(epochs) != self.teacher_levels:
                raise ConfigError(f"config teacher.epochs of variant {name!r} lists {len(epochs)} values "
                                  f"but teacher.levels is {self.teacher_levels}")  # fmt: skip
        if teacher["bank_size"] is not None and teacher["zero_padded"] >= teacher["bank_size"]:
            raise ConfigError(f"config teacher.zero_padded={teacher['zero_padded']} must be less than "
                              f"teacher.bank_size={teacher['bank_size']}: a bank's zero-padded rows are some of its "
                              "rows")  # fmt: skip
        deepest = max(grid.levels for grid in self.sources.values()) - 1
        if teacher["bank_frames"] is not None and teacher["bank_frames"] // 2 ** (deepest + 1) < 2:
            raise ConfigError(f"config teacher.bank_frames={teacher['bank_frames']} leaves the level-{deepest} bank "
                              f"fewer than 2 sequences of {2 ** (deepest + 1)} frames")  # fmt: skip

    def _too_long(self, Ts, levels: int) -> list[int]:
        """The T of ``Ts`` that a tree of ``levels`` levels does not reach."""
        return [T for T in Ts if depth(T) > levels]

    def _check_sources(self) -> None:
        """Every source runs a grid its teacher reaches, and a canonical test file has its layout and enough
        sequences of enough frames."""
        for name, grid in self.sources.items():
            if grid.levels > self.teacher_levels:
                raise ConfigError(f"config sources.{name}.levels={grid.levels} is more than "
                                  f"teacher.levels={self.teacher_levels}")  # fmt: skip
            too_long = self._too_long(grid.T, grid.levels)
            if too_long:
                raise ConfigError(f"config T {too_long} of source {name} need more than its {grid.levels} teacher "
                                  "levels")  # fmt: skip
            if grid.canonical_test is not None:
                try:
                    check_canonical(grid.kind, Path(grid.canonical_test), max(grid.T),
                                    self.config["evaluation"]["sequences"])  # fmt: skip
                except ValueError as exc:
                    raise ConfigError(f"config sources.{name}.canonical_test: {exc}") from exc

    def _check_students(self) -> None:
        """Every student source runs, has a teacher at its student d that reaches its T, and trains defined
        variants of registered architectures."""
        variants = self.config["student"]["variants"]
        for name, setting in self.students.items():
            if name not in self.sources:
                raise ConfigError(f"config student.sources names {name}, which is not one of sources "
                                  f"{list(self.sources)}")  # fmt: skip
            grid, where = self.sources[name], f"config student (source {name})"
            if setting.T and setting.dim not in grid.dims:
                raise ConfigError(f"{where}: d={setting.dim} is not one of {name}'s dims {list(grid.dims)}: no "
                                  "teacher to distill")  # fmt: skip
            unknown = sorted(set(setting.train) - set(variants))
            if unknown:
                raise ConfigError(f"{where}: student.train names student variants {unknown} that student.variants "
                                  f"does not define (defined: {sorted(variants)})")  # fmt: skip
            too_long = self._too_long(setting.T, grid.levels)
            if too_long:
                raise ConfigError(f"{where}: student.T has {too_long}, which need more than {name}'s {grid.levels} "
                                  "teacher levels")  # fmt: skip
        for name in variants:
            architecture = self.student_settings(name)["architecture"]
            if architecture not in registry.STUDENT_ARCHITECTURES:
                raise ConfigError(f"config student.variants.{name}.architecture: {architecture!r} is no registered "
                                  f"student architecture ({sorted(registry.STUDENT_ARCHITECTURES)})")

    def _check_compressors(self) -> None:
        compressors = self.config["compressors"]
        unknown = sorted(set(compressors["models"]) - set(registry.COMPRESSORS))
        if unknown:
            raise ConfigError(f"config compressors.models names {unknown}; the registered compressors are "
                              f"{sorted(registry.COMPRESSORS)}")  # fmt: skip
        problems = []
        for name, setting in self.compressors.items():
            if name not in self.sources:
                problems.append(f"compressors.sources names {name}, which is not one of sources {list(self.sources)}")
                continue
            grid = self.sources[name]
            if not set(compressors["seeds"]) <= set(grid.seeds):
                problems.append(f"compressors.seeds {compressors['seeds']} are not all in {name}'s seeds "
                                f"{list(grid.seeds)}")  # fmt: skip
            if setting.dim not in grid.dims:
                problems.append(f"the compressors' d={setting.dim} on {name} is not one of its dims {list(grid.dims)}")
            if setting.T not in grid.T:
                problems.append(f"the compressors' T={setting.T} on {name} is not one of its T {list(grid.T)}")
        if problems:
            raise ConfigError("config: " + "; ".join(problems) + " (the compressors are compared with the teacher "
                              "there)")  # fmt: skip

    def _check_video(self) -> None:
        video, plan = self.config["video"], self.video
        for key in ("epochs", "videos", "pairs_per_video"):
            if len(video["training"][key]) != plan.levels:
                raise ConfigError(f"config video.training.{key} lists {len(video['training'][key])} values "
                                  f"but video.levels is {plan.levels}")  # fmt: skip
        if video["clip_frames"] % 2**plan.levels:
            raise ConfigError(f"config video.clip_frames={video['clip_frames']} must be a multiple of "
                              f"2^video.levels = {2**plan.levels} (the frames one level-{plan.levels - 1} memory "
                              "holds)")  # fmt: skip
        if video["dataset"] == "ucf101":
            self._check_ucf101_root(video["root"])
        try:
            model = VideoModelConfig(frame_size=video["frame_size"], channels=1 if plan.sequence_source else 3,
                                     **video["model"])  # fmt: skip
            model.check_linear_path()
        except ValueError as exc:
            raise ConfigError(str(exc) if str(exc).startswith("config") else f"config video.model: {exc}") from exc
        if plan.sequence_source is not None:
            self._check_video_source(plan, video)

    def _check_ucf101_root(self, root: str | None) -> None:
        if not root:
            raise ConfigError("config video.root must name the UCF-101 directory when video.dataset is ucf101")
        if self.video.left_out is None:  # a directory: it must hold videos in UCF-101's layout
            from imfn.data.video import VideoDatasetError, list_ucf101

            try:
                list_ucf101(root)
            except VideoDatasetError as exc:
                raise ConfigError(str(exc)) from exc

    def _check_video_source(self, plan: VideoPlan, video: Mapping) -> None:
        """Video on a sequence source: Table 3 sets that source's tree and clip PCA beside every level, at the video
        memory and each level's window; its frames are not resized."""
        name = plan.sequence_source
        if name not in registry.SOURCES:
            raise ConfigError(f"config video.dataset {name!r} is neither footage {list(FOOTAGE)} nor a registered "
                              f"sequence source {sorted(registry.SOURCES)}")  # fmt: skip
        grid = self.sources.get(name)
        if grid is None or video["seed"] not in grid.seeds or plan.memory not in grid.dims \
                or not set(plan.windows) <= set(grid.T):  # fmt: skip
            raise ConfigError(
                f"config video.dataset {name}: Table 3 sets the {name} tree and clip PCA beside every level, so "
                f"sources.{name} must run seed video.seed={video['seed']}, d = video.model.memory_tokens x width = "
                f"{plan.memory} and T {plan.windows}"
                + (f" (it runs seeds {list(grid.seeds)}, dims {list(grid.dims)}, T {list(grid.T)})" if grid else ""))
        shape = grid.kind.frame_shape
        if (video["frame_size"], video["frame_size"]) != (shape.height, shape.width):
            raise ConfigError(f"config video.frame_size={video['frame_size']}: {name} frames are "
                              f"{shape.height}x{shape.width}, and they are not resized")  # fmt: skip

    # --- the checks of targets that are not always planned -------------------------------------------

    def paper_problem(self, target: str) -> str | None:
        """Why ``target`` (``ablation``, ``paper_sweep``) cannot be planned, or None."""
        paper = self.paper
        if paper is None:
            return f"config sources: the {target} is of the paper's source, which the config does not run"
        if target == "ablation":
            dims = self.config["ablation"]["dims"]
            if not set(dims) <= set(paper.dims):
                return (f"config ablation.dims {dims} are not all in dims {list(paper.dims)} (the per-frame references "
                        "are computed for dims)")  # fmt: skip
        if target == "paper_sweep":
            sweep = self.config["paper_sweep"]
            if sweep["dim"] not in paper.dims or sweep["seed"] not in paper.seeds:
                return (f"config paper_sweep runs at seed {sweep['seed']} and d = {sweep['dim']}, which must be in "
                        f"seeds {list(paper.seeds)} and dims {list(paper.dims)} (the per-frame references are "
                        "computed there)")  # fmt: skip
        return None
