"""Evaluation: got10k-exact metrics, one-pass evaluation runs, plots and tables."""
from jaxtrack.eval.metrics import (aggregate, ao_sr, auc, dataset_sequence_metrics,
                                   norm_precision_curve, precision_curve, sequence_metrics,
                                   success_curve)
from jaxtrack.eval.ope import evaluate_results, read_boxes, read_times, run_ope
from jaxtrack.eval.plots import markdown_table, plot_success_precision

__all__ = ["aggregate", "ao_sr", "auc", "dataset_sequence_metrics", "evaluate_results",
           "markdown_table", "norm_precision_curve", "plot_success_precision",
           "precision_curve", "read_boxes", "read_times", "run_ope", "sequence_metrics",
           "success_curve"]
