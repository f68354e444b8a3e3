# Backforth. Two commands do everything on a fresh Debian machine (as root):
#   make demo   services, migrations, the embedded model, demo data, a worker and the web app
#   make test   the same set-up, then the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: help venv secrets services migrate model demo serve stop test test-fast lint format clean bench

help:
	@echo "make demo       set everything up and serve the demo on http://127.0.0.1:8000"
	@echo "make test       set everything up and run the whole test suite"
	@echo "make test-fast  only the fast tests (no model, no browser)"
	@echo "make stop       stop the web server and the workers"
	@echo "make bench      speed benchmarks, ours vs a baseline side by side (bench/results.json)"
	@echo "make lint       ruff check + format check + import contracts + mypy (also run first by make test)"

$(STAMP): requirements.txt requirements-dev.txt scripts/bootstrap.sh
	@scripts/bootstrap.sh
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

# .env with this machine's random secret key and service passwords, before anything reads it.
secrets:
	@scripts/secrets.sh

services: secrets
	@scripts/services.sh up

migrate: venv services
	@echo "[setup] applying database migrations"
	@$(PY) manage.py migrate --noinput -v 0

model: migrate
	@$(PY) manage.py prepare_model

demo: model
	@$(PY) manage.py demo_data
	@$(PY) manage.py collectstatic --noinput -v 0
	@scripts/serve.sh start
	@echo "[demo] round 1 on the embedded model: train backward model, backtranslate, curate, rewrite, train forward"
	@echo "[demo] model, evaluate (no human review: Humpback's automatic loop; about 10 minutes on 2 cores)"
	@$(PY) manage.py launch_round --corpus "Python reference (demo)" --sample-size $${DEMO_SAMPLE:-24} --chunk-size 8 \
		--top-k 8 --review skip $(DEMO_ROUND_FLAGS) --wait --if-fewer-than 1
	@echo "[demo] round 2 (backward model from the grown seed, curation by round 1's model) runs in the background"
	@echo "[demo] and waits for annotators in review: watch it on the Rounds page"
	@$(PY) manage.py launch_round --corpus "Python reference (demo)" --sample-size $${DEMO_SAMPLE:-24} --chunk-size 8 \
		--top-k 8 --review human $(DEMO_ROUND_FLAGS) --if-fewer-than 2
	@echo
	@echo "Backforth is running: http://127.0.0.1:$${BACKFORTH_PORT:-8000}/  (log in with a demo user above)"
	@echo "System status: http://127.0.0.1:$${BACKFORTH_PORT:-8000}/status/   Logs: var/log/"
	@echo "Stop it with: make stop"

DEMO_ROUND_FLAGS = --train-steps 16 --eval-limit 6 --eval-max-new-tokens 96

serve: venv services
	@scripts/serve.sh start

stop:
	@scripts/serve.sh stop

test: lint model
	@scripts/bootstrap.sh --browser
	@echo "[test] running the whole suite"
	@$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv services
	@$(PY) -m pytest -m "not model and not browser" $(PYTEST_ARGS)

# secrets: mypy's Django plugin loads the settings, which need .env's secret key.
lint: venv secrets
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	@$(VENV)/bin/lint-imports --no-cache >/dev/null || $(VENV)/bin/lint-imports --no-cache
	@out=$$($(VENV)/bin/mypy 2>&1) || { echo "$$out"; exit 1; }
	@echo "[lint] ruff, the import contracts and mypy (pyproject.toml) pass"

format: venv
	@$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean: stop
	rm -rf $(VENV) var/staticfiles

bench: model
	@$(VENV)/bin/pip install -q -r requirements-bench.txt 2>&1 | grep -v "^WARNING: Location 'file://" || true
	@$(VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
	@echo "[bench] generation benchmarks (writes bench/results.json; takes several minutes)"
	@$(PY) -m bench.generation
	@echo "[bench] fine-tuning and evaluation benchmarks"
	@$(PY) -m bench.finetune
	@echo "[bench] curation signals and gates on labelled seed pairs, held-out NLL after fine-tuning (about 5 minutes)"
	@$(PY) -m bench.curation
	@echo "[bench] review queue and seed search (1M candidates, 20 concurrent annotators; own database)"
	@$(PY) -m bench.review
	@echo "[bench] corpus ingestion vs datatrove, peak memory of a large JSONL.gz"
	@$(PY) -m bench.corpus
	@echo "[bench] dataset export, 1,000,000 rows"
	@$(PY) -m bench.export
	@$(PY) -m bench.common cleanup
	@echo "[bench] results in bench/results.json"
