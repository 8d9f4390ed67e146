# Two commands do all the set-up on a fresh machine:
#   make demo   the whole product on the embedded local stack (left running; make down stops it)
#   make test   the test suite (unit, integration against moto + terraform, e2e on the real API server)
# The first run builds etcd and kube-apiserver from the Go module proxy into ~/.cache/opex (minutes).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Every Python package comes from uv.lock (versions and hashes); uv itself from
# hack/uv-requirements.txt (hashes checked by pip), cached outside the clone like the other tools.
UV_VERSION := $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' hack/uv-requirements.txt)
OPEX_CACHE ?= $(HOME)/.cache/opex
UV_DIR     := $(OPEX_CACHE)/uv/$(UV_VERSION)
UV         := $(UV_DIR)/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: all venv tools test unit lock lock-check bench demo cluster down crds dashboard clean

all: test

# The path holds the version, and a release's files never change: built once per machine, whatever
# the clone's timestamps.
$(UV):
	$(PYTHON) -m venv $(UV_DIR)
	$(UV_DIR)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r hack/uv-requirements.txt
	touch $@

# Exactly the locked versions, the test set with the runtime set; never resolves (--frozen).
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --quiet --frozen --extra test --python $(PYTHON)
	touch $@

venv: $(STAMP)

# Regenerate uv.lock after a change to pyproject.toml, keeping every other pin (UPGRADE=1 moves
# every package to the newest its range allows; UPGRADE=moto moves one). Commit the lock: CI tests
# the new versions before anyone installs them.
lock: $(UV)
	$(UV) lock --python $(PYTHON) $(if $(filter 1,$(UPGRADE)),--upgrade,$(if $(UPGRADE),--upgrade-package $(UPGRADE)))

lock-check: $(UV)
	@$(UV) lock --check --offline --quiet --python $(PYTHON) 2>/dev/null || { \
	  echo "uv.lock does not match pyproject.toml's dependencies: run 'make lock' and commit uv.lock" >&2; exit 1; }

# Local control plane binaries, the Terraform CLI, helm, the kstatus helper, Prometheus and Alertmanager
# (cached outside the clone); the node's binaries, and where a node can run (root, Debian) its
# Debian packages, base images and sandbox image (hack/cluster.py prepare).
tools: $(STAMP)
	cd hack && ../$(BIN)/python kube_build.py
	cd hack && ../$(BIN)/python cluster.py prepare
	cd hack && ../$(BIN)/python terraform_cli.py
	cd hack && ../$(BIN)/python gotools.py
	cd hack && ../$(BIN)/python monitoring_build.py

# The operator image first (where a node can run; rebuilt only when what it holds changed), so that
# its build is not inside a test's time limit. The 25 slowest tests are listed at the end: the
# suite's time budget is ~20 minutes on the 2-core reference machine.
test: lock-check tools
	cd hack && ../$(BIN)/python cluster.py image
	$(BIN)/pytest --durations=25 $(PYTEST_ARGS)

# The inner loop: the layers of DESIGN section 4 (.importlinter), the types ([tool.mypy] in
# pyproject.toml), then the unit tests (seconds; no control plane, AWS or terraform).
unit: lock-check $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

# Figures, not tests: every benchmark on the local stack, written to docs/benchmarks.md (~16 minutes).
bench: tools
	$(BIN)/python bench/run.py $(BENCH_ARGS)

demo: lock-check tools
	$(BIN)/python hack/demo.py

# The chart installed on a real node (containerd, kubelet, ...), the image built from the Dockerfile,
# AWS as moto on the host; left running (make down stops it and undoes the node's host changes).
cluster: lock-check tools
	$(BIN)/python hack/cluster.py up

down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python hack/stack.py down; else echo "nothing was running"; fi

# Regenerate crds/ (and the chart's copy) from the API models, and the policy's part of the chart's
# values schema from the policy model (tests fail when they differ).
crds: $(STAMP)
	$(BIN)/opex crds crds
	$(BIN)/opex crds charts/opex-operator/crds --policy-schema charts/opex-operator/values.schema.json

# Regenerate the Grafana dashboard JSON from hack/grafana_dashboard.py (a test fails when it is stale).
dashboard: $(STAMP)
	$(BIN)/python hack/grafana_dashboard.py

clean: down
	rm -rf $(VENV) .local
