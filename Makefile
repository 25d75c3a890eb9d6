# Shortcuts over scripts/ (the README's two commands) plus lint.
.PHONY: demo test lint metadata clean

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

lint:
	bash scripts/setup.sh dev
	.venv/bin/ruff check taskexec tests benchmarks
	.venv/bin/ruff format --check taskexec tests benchmarks
	.venv/bin/mypy taskexec

clean:
	rm -rf .venv demo.db demo.db-wal demo.db-shm reports
