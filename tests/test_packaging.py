"""Set-up files agree with each other."""

import re
import tomllib

import yaml


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


# conda and PyPI spell one package differently
CONDA_TO_PYPI = {"pytorch": "torch"}


def test_environment_yml_names_the_same_dependencies_as_pyproject(repo):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    pypi = {_name(r) for r in project["dependencies"]}
    pypi |= {_name(r) for r in project["optional-dependencies"]["test"]}
    env = yaml.safe_load((repo / "environment.yml").read_text())
    conda, pip = set(), set()
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            pip |= {_name(r) for r in entry["pip"]}
        else:
            conda.add(CONDA_TO_PYPI.get(_name(entry), _name(entry)))
    conda -= {"python", "pip"}
    assert conda | pip == pypi
    # the default environment installs without a GPU or nvcc: Mamba's kernels come with the GPU install (README)
    assert not {"mamba-ssm", "causal-conv1d"} & (conda | pip | pypi)


def test_ci_runs_the_readme_test_command(repo):
    assert "make test" in (repo / ".ci" / "run").read_text()
    assert "make test" in (repo / "README.md").read_text()


def test_the_rules_conda_environment_installs_the_dependencies_and_this_package(repo):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((repo / "workflow" / "envs" / "imfn.yaml").read_text())
    conda = {CONDA_TO_PYPI.get(_name(e), _name(e)) for e in env["dependencies"] if isinstance(e, str)}
    pip = [r for e in env["dependencies"] if isinstance(e, dict) for r in e["pip"]]
    assert conda - {"python", "pip"} == {_name(r) for r in project["dependencies"]}
    # relative to the env file's folder, ../.. is the repository root (and, from Snakemake's copy in
    # .snakemake/conda/, the working directory)
    assert pip == ["-e ../.."] and (repo / "workflow" / "envs" / "../.." / "pyproject.toml").exists()
