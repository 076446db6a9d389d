"""Thin DVC stage entry points (`python -m ferops.stages.<name>`): read params.yaml, call the
packages, write the stage's outs. No logic of their own beyond wiring paths."""
