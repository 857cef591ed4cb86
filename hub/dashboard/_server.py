"""The dashboard's HTTP server (aiohttp): the page, its JSON, ``/metrics`` and ``/healthz``, on 127.0.0.1 only.

Routes: ``/`` the page, ``/static/...`` its script, style and the vendored chart library, ``/api/summary`` the
figures the page polls every two seconds, ``/metrics`` (Prometheus text: every worker's metrics, gathered from
``PROMETHEUS_MULTIPROC_DIR``, and ``lienthong up``'s own), ``/healthz``. Anything else is 404. Read-only, no
authentication: it binds the loopback interface, and the README says how to publish it safely.

``lienthong up`` is not asyncio: the server runs its own event loop on a thread of its own (``DashboardServer``).
A reading of the metrics is taken every ``sample_every`` seconds for the charts; the per-agency figures from the
ledger (``agency_figures``, optional) are asked for at most every ``figures_every`` seconds, off the loop, because
they read the ledger's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from importlib import resources
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from hub.dashboard._figures import AgencyFigures, History, Reading, read_samples, summary

__all__ = ["DEFAULT_FIGURES_EVERY", "DEFAULT_SAMPLE_EVERY", "Dashboard", "DashboardServer"]

log = logging.getLogger("lienthong.dashboard")

#: Seconds between readings of the metrics: the page polls at the same pace.
DEFAULT_SAMPLE_EVERY = 2.0
#: Seconds between asks for the per-agency figures from the ledger (a read of its history, not free).
DEFAULT_FIGURES_EVERY = 30.0
_HISTORY = 300  # readings kept: ten minutes at one every two seconds
_STOP_TIMEOUT = 10.0
_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
# The page loads only its own files (no CDN, no inline script), and may not be framed.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _static_dir() -> Path:
    """The page's files, shipped in the package (``pyproject.toml`` package-data)."""
    return Path(str(resources.files("hub.dashboard") / "static"))


class Dashboard:
    """What the dashboard shows, read from ``registries`` and, when given, the ledger's per-agency figures."""

    def __init__(
        self,
        registries: Callable[[], Sequence[CollectorRegistry]],
        *,
        agency_figures: Callable[[], AgencyFigures] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registries = registries
        self._agency_figures = agency_figures
        self._figures: AgencyFigures | None = None
        self._clock = clock
        self._history = History(_HISTORY)

    def metrics_text(self) -> bytes:
        """``/metrics``: every registry in Prometheus's text format."""
        return b"".join(generate_latest(registry) for registry in self._registries())

    def sample(self) -> None:
        """Take a reading for the charts (every couple of seconds)."""
        self._history.add(Reading.of(read_samples(self._registries()), self._clock()))

    def refresh_agency_figures(self) -> None:
        """Ask the ledger's per-agency figures again (blocking); a failure keeps the last ones and is logged."""
        if self._agency_figures is None:
            return
        try:
            self._figures = self._agency_figures()
        except Exception:  # the dashboard must keep serving whatever the figures' source does
            log.exception("the per-agency figures failed; showing the last ones")

    def summary(self) -> dict[str, object]:
        """``/api/summary``: the figures now, with the charts' history."""
        samples = read_samples(self._registries())
        now = Reading.of(samples, self._clock())
        figures = self._figures if self._agency_figures is not None else None
        if self._agency_figures is not None and figures is None:
            figures = {}  # wired, not read yet: agencies show "–" until the first answer
        return summary(samples, self._history, now, figures)

    def app(
        self, *, sample_every: float = DEFAULT_SAMPLE_EVERY, figures_every: float = DEFAULT_FIGURES_EVERY
    ) -> web.Application:
        """The aiohttp application, with a background task taking readings and asking for agency figures."""
        static = _static_dir()
        app = web.Application(middlewares=[_security_headers])

        async def page(_request: web.Request) -> web.StreamResponse:
            return web.FileResponse(static / "index.html", headers={"Cache-Control": "no-cache"})

        async def api_summary(_request: web.Request) -> web.StreamResponse:
            return web.json_response(self.summary(), headers={"Cache-Control": "no-store"})

        async def metrics(_request: web.Request) -> web.StreamResponse:
            return web.Response(body=self.metrics_text(), headers={"Content-Type": _PROMETHEUS_TEXT})

        async def healthz(_request: web.Request) -> web.StreamResponse:
            return web.Response(text="ok\n")

        app.router.add_get("/", page)
        app.router.add_get("/api/summary", api_summary)
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        # The shipped files only, listed once: no directory listings, no path a request could bend elsewhere.
        files = {f.relative_to(static).as_posix(): f for f in static.rglob("*") if f.is_file()}

        async def asset(request: web.Request) -> web.StreamResponse:
            file = files.get(request.match_info["name"])
            if file is None:
                raise web.HTTPNotFound
            return web.FileResponse(file, headers={"Cache-Control": "no-cache"})

        app.router.add_get("/static/{name:.+}", asset)

        async def background(_app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(self._keep_reading(sample_every, figures_every))
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.cleanup_ctx.append(background)
        return app

    async def _keep_reading(self, sample_every: float, figures_every: float) -> None:
        loop = asyncio.get_running_loop()
        figures_at = -figures_every
        while True:
            try:
                self.sample()
            except Exception:  # a torn metrics file mid-write must not stop the charts for good
                log.exception("reading the metrics failed")
            if self._agency_figures is not None and time.monotonic() - figures_at >= figures_every:
                figures_at = time.monotonic()
                await loop.run_in_executor(None, self.refresh_agency_figures)
            await asyncio.sleep(sample_every)


@web.middleware
async def _security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    response.headers.update(_SECURITY_HEADERS)
    return response


class DashboardServer:
    """Serves a ``Dashboard`` on ``127.0.0.1:port`` from a thread with its own event loop."""

    def __init__(self, dashboard: Dashboard, port: int, *, host: str = "127.0.0.1") -> None:
        self._dashboard = dashboard
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> DashboardServer:
        """Bind and serve; raises ``OSError`` here (not in the thread) when the port is taken."""
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(self._dashboard.app(), access_log=None)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, self._host, self._port).start())
        except BaseException:
            loop.run_until_complete(runner.cleanup())
            loop.close()
            raise
        self._loop, self._runner = loop, runner
        self._thread = threading.Thread(target=loop.run_forever, name="lienthong-dashboard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the loop."""
        loop, runner, thread = self._loop, self._runner, self._thread
        if loop is None or runner is None or thread is None:
            return
        self._loop = self._runner = self._thread = None
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=_STOP_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=_STOP_TIMEOUT)
        loop.close()
