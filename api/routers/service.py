"""The service itself: health, and the API docs from packaged assets (never a CDN)."""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from ..schemas import Health
from ..services.health import HealthProbe

router = APIRouter(tags=["service"])

DOCS_ASSETS = Path(swagger_ui_bundle.swagger_ui_path)


@router.get("/health", response_model=Health, summary="Liveness and the job queue (no token)",
            responses={503: {"model": Health, "description": "No worker is alive (or, "
                                                          "with only a detail, the database "
                                                          "did not answer)"}})
async def health(request: Request) -> Response:
    """How many workers are alive, how many runs are queued and running, and how long ago
    the oldest running job's lease was renewed; 503 when no worker is alive. Async, with no
    dependency that would need a worker thread: it answers while all are taken."""
    probe: HealthProbe = request.app.state.health
    report = await probe.report()
    return JSONResponse(report.model_dump(), status_code=200 if report.workers_alive else 503)


@router.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=request.app.openapi_url,
                               title=f"{request.app.title} - API docs",
                               swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                               swagger_css_url="/docs/assets/swagger-ui.css",
                               swagger_favicon_url="/docs/assets/favicon-32x32.png")
