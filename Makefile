# Two commands do everything on a fresh machine:
#   make run    set up .venv and run the CPU-sized pipeline (config/quick.yaml)
#   make test   set up .venv and run the test suite
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORES ?= all
# torch first, as its CPU build: from PyPI on Linux a plain `pip install torch` is the multi-GB CUDA build, which
# nothing here uses. Where PyTorch's CPU wheel index answers (5 s), torch comes from there; where it does not, from
# the default index, saying so (on Linux from PyPI: the CUDA build). GPU users choose their own build (docs/gpu.md).
TORCH := torch==2.13.0
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup run ablation smoke figures results-page test test-cluster gpu-check report dry-run lint clean

$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	@if $(PYTHON) -c "import urllib.request; urllib.request.urlopen('$(TORCH_CPU_INDEX)/torch/', timeout=5)" \
			2>/dev/null; then \
		echo "installing $(TORCH) (CPU build) from $(TORCH_CPU_INDEX)"; \
		$(PYTHON) -m pip install --quiet --index-url $(TORCH_CPU_INDEX) --extra-index-url https://pypi.org/simple \
			$(TORCH); \
	else \
		echo "$(TORCH_CPU_INDEX) is not reachable: installing $(TORCH) from the default index (a local wheel" \
			"where pip's configuration has one; on Linux from PyPI, the CUDA build of several GB)"; \
		$(PYTHON) -m pip install --quiet $(TORCH); \
	fi
	$(PYTHON) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile config/quick.yaml --rerun-incomplete

ablation: $(STAMP)
	$(VENV)/bin/snakemake ablation --cores $(CORES) --configfile config/quick.yaml --rerun-incomplete

smoke: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile config/smoke.yaml --rerun-incomplete

figures: $(STAMP)
	$(VENV)/bin/imfn figures --results results
	test ! -f results/metrics/student.parquet || $(VENV)/bin/imfn student-figures --results results
	test ! -f results/metrics/teacher_ablation.parquet || $(VENV)/bin/imfn ablation-report --results results
	test ! -f results/metrics/video.parquet || $(VENV)/bin/imfn video-report --results results

# docs/results.md and README.md's headline table, from the finished run in results/ and logs/ (make run first).
results-page: $(STAMP)
	$(VENV)/bin/imfn results-page --results results --logs logs --out docs/results.md --readme README.md

dry-run: $(STAMP)
	$(VENV)/bin/snakemake -n --quiet rules

# Snakemake's best-practice checks (workflow/README.md, section Lint).
lint: $(STAMP)
	$(VENV)/bin/snakemake --lint

test: $(STAMP)
	$(PYTHON) -m pytest

# The smoke pipeline on a one-node SLURM cluster started here (root; apt-get installs slurm-wlm + munge).
test-cluster: $(STAMP)
	$(PYTHON) -m pytest -m cluster -s tests/cluster

# On one GPU, in under 8 minutes: the CUDA tests, the smoke config on CUDA, mixed precision at the paper's sizes and
# a timed slice of a paper cell, into results/gpu_check.json (docs/gpu.md). Exits 2 where torch sees no GPU.
# With a python that already has imfn's dependencies and a CUDA torch (no .venv): make gpu-check PYTHON=python3
gpu-check: $(if $(filter $(VENV)/bin/python,$(PYTHON)),$(STAMP))
	$(PYTHON) benchmarks/gpu_check.py

# One HTML report of every figure and table (make run first); a screenshot of it if chromium is installed.
report: $(STAMP)
	$(VENV)/bin/snakemake all $$(test -f results/tables/teacher_ablation.md && echo ablation) \
		--report results/report.html --configfile config/quick.yaml
	! command -v chromium >/dev/null || $(PYTHON) tests/report_screenshot.py results/report.html results/report_screenshot.png

# Pipeline outputs only: benchmarks/ also holds the benchmark scripts, which stay.
clean:
	rm -rf results logs .snakemake benchmarks/mnist benchmarks/video
	rm -f benchmarks/*.parquet
