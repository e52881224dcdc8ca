.PHONY: setup demo test lint up down

setup:
	scripts/setup.sh

demo: setup
	.venv/bin/streamscore demo

test: setup
	scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

up: setup
	.venv/bin/streamscore up

down:
	.venv/bin/streamscore down
