# Two commands do all the set-up on a fresh machine:
#   make demo   the whole product on the embedded local stack (left running; make down stops it)
#   make test   the test suite (unit, integration against moto + terraform, e2e on the real API server)
# The first run builds etcd and kube-apiserver from the Go module proxy into ~/.cache/opex (minutes).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv tools test unit bench demo down crds dashboard clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(STAMP)

# Local control plane binaries, the Terraform CLI, helm, the kstatus helper, Prometheus and Alertmanager
# (cached outside the clone).
tools: $(STAMP)
	cd hack && ../$(BIN)/python kube_build.py
	cd hack && ../$(BIN)/python terraform_cli.py
	cd hack && ../$(BIN)/python gotools.py
	cd hack && ../$(BIN)/python monitoring_build.py

test: tools
	$(BIN)/pytest $(PYTEST_ARGS)

# The inner loop: unit tests only (seconds; no control plane, AWS or terraform).
unit: $(STAMP)
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

# Figures, not tests: every benchmark on the local stack, written to docs/benchmarks.md (~16 minutes).
bench: tools
	$(BIN)/python bench/run.py $(BENCH_ARGS)

demo: tools
	$(BIN)/python hack/demo.py

down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python hack/stack.py down; else echo "nothing was running"; fi

# Regenerate crds/ (and the chart's copy) from the API models (tests fail when they differ).
crds: $(STAMP)
	$(BIN)/opex crds crds
	$(BIN)/opex crds charts/opex-operator/crds

# Regenerate the Grafana dashboard JSON from hack/grafana_dashboard.py (a test fails when it is stale).
dashboard: $(STAMP)
	$(BIN)/python hack/grafana_dashboard.py

clean: down
	rm -rf $(VENV) .local
