"""The pages for people: the playground at `/` and Swagger UI at `/docs`, served offline.

The playground is one static page (app/static/playground/) calling the JSON API from the browser:
plain HTML, CSS and JavaScript, no build step and no CDN. Swagger UI's assets are a pinned,
unmodified copy of swagger-ui-dist (app/static/swagger-ui/VERSION) served by the app itself, as in
FastAPI's "Self-hosting JavaScript and CSS for docs". All of it is under app/static/, so `/` and
`/docs` work with the network off.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parents[1] / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def playground() -> FileResponse:
    return FileResponse(STATIC / "playground" / "index.html", media_type="text/html")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=root + request.app.openapi_url,
        title=f"{request.app.title} - API docs",
        swagger_js_url=f"{root}/static/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/static/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/swagger-ui/favicon-32x32.png",
    )


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)
