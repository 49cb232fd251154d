"""The playground at `/`: one static page (app/static/playground/) calling the JSON API from the browser.

Plain HTML, CSS and JavaScript, no build step and no CDN: with Swagger UI's copy it is all under
app/static/, served by the app, so `/` and `/docs` work with the network off.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def playground() -> FileResponse:
    return FileResponse(STATIC / "playground" / "index.html", media_type="text/html")


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)
