"""Output from stored results: figures rendered to PDF/PNG (:mod:`~analyses.output.render`) and the
self-contained HTML report (:mod:`~analyses.output.report`). Nothing here computes; it reads files."""
