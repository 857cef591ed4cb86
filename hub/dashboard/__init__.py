"""The administrators' dashboard: a live HTML page over the hub's metrics, served by ``lienthong up``.

``Dashboard`` reads the figures (``hub.dashboard._figures``: pure), ``DashboardServer`` serves them with the page
(``static/``, the chart library uPlot vendored beside its licence) on 127.0.0.1.
"""

from hub.dashboard._figures import AgencyFigures, histogram_quantile, replay_command
from hub.dashboard._server import DEFAULT_FIGURES_EVERY, DEFAULT_SAMPLE_EVERY, Dashboard, DashboardServer

__all__ = [
    "DEFAULT_FIGURES_EVERY",
    "DEFAULT_SAMPLE_EVERY",
    "AgencyFigures",
    "Dashboard",
    "DashboardServer",
    "histogram_quantile",
    "replay_command",
]
