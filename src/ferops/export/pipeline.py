"""Old name of :mod:`ferops.export.chain` (renamed: three modules were called "pipeline"); kept so
existing ``from ferops.export.pipeline import ...`` lines keep working."""

from ferops.export.chain import FORMATS, flat_metrics, parity, render_markdown, run_export

__all__ = ["FORMATS", "flat_metrics", "parity", "render_markdown", "run_export"]
