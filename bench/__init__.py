"""Benchmarks of finetune-tui (issue #7): run on demand with `python -m bench`, never as timed tests."""
