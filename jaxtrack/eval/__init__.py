"""Evaluation: got10k-exact metrics, one-pass evaluation runs, sweeps, tables and plots."""
from jaxtrack.eval.metrics import (aggregate, ao_sr, auc, dataset_sequence_metrics,
                                   norm_precision_curve, precision_curve, sequence_metrics,
                                   success_curve)
from jaxtrack.eval.ope import evaluate_results, load_results, read_boxes, read_times, run_ope
from jaxtrack.eval.plots import plot_success_precision
from jaxtrack.eval.report import markdown_table

__all__ = ["aggregate", "ao_sr", "auc", "dataset_sequence_metrics", "evaluate_results",
           "load_results", "markdown_table", "norm_precision_curve", "plot_success_precision",
           "precision_curve", "read_boxes", "read_times", "run_ope", "sequence_metrics",
           "success_curve"]
