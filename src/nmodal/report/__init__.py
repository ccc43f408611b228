"""Reports: self-contained HTML plus Markdown with the paper's tables, figures and examples.

Example:
    >>> from nmodal.report import render_report
    >>> files = render_report(results, "runs/demo")  # doctest: +SKIP
"""

from nmodal.report.render import ReportFiles, md_table_to_html, render_report
from nmodal.report.tables import Table, chance, paper_tables

__all__ = ["ReportFiles", "Table", "chance", "md_table_to_html", "paper_tables", "render_report"]
