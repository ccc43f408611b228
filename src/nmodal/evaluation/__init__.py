"""Retrieval protocols and metrics (the paper's Fig. 2 and Tables 2-5)."""

from nmodal.evaluation.protocol import ProtocolConfig, evaluate_model, run_protocol, summarize
from nmodal.evaluation.tables import format_cell, recall_grid_table, recall_table
from nmodal.retrieval import (
    DEFAULT_KS,
    post_retrieval_recall,
    retrieval_ranks,
    retrieval_report,
)

__all__ = [
    "DEFAULT_KS",
    "ProtocolConfig",
    "evaluate_model",
    "format_cell",
    "post_retrieval_recall",
    "recall_grid_table",
    "recall_table",
    "retrieval_ranks",
    "retrieval_report",
    "run_protocol",
    "summarize",
]
