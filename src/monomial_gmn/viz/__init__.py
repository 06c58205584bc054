"""Seeing the networks: layered drawings of parameter graphs and summaries of zoos.

* :func:`draw_graph` — one network's parameter graph as a layered PNG (neurons coloured by symmetry, edges
  shaded by kernel norm, skip/residual edges marked).
* :func:`zoo_summary` / :func:`format_zoo_summary` / :func:`plot_zoo` — counts per activation/architecture,
  the distribution of the target (test accuracy, PSNR or label), and weight-norm statistics per layer.

Everything draws on matplotlib's Agg backend; no display is needed.
"""

from ._draw import MAX_DRAW_EDGES, MAX_DRAW_NODES, SYMMETRY_STYLE, GraphTooLargeError, draw_graph
from ._zoo_summary import format_zoo_summary, layer_norms, plot_zoo, zoo_summary

__all__ = ["draw_graph", "GraphTooLargeError", "SYMMETRY_STYLE", "MAX_DRAW_NODES", "MAX_DRAW_EDGES",
           "zoo_summary", "format_zoo_summary", "plot_zoo", "layer_norms"]
