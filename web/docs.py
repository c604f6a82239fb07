"""The API's interactive documentation (Swagger UI 5, which renders FastAPI's OpenAPI 3.1),
served with its assets from this server: the page works on a network without internet, and
no third-party CDN sees who reads it. The assets are those the swagger-ui-py package ships."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS = "/api/docs"
ASSETS = f"{DOCS}/assets"


def assets_directory() -> Path:
    return Path(str(files("swagger_ui") / "static"))


def install(app: FastAPI, openapi_url: str) -> None:
    """Serve the docs page at /api/docs and its assets under /api/docs/assets."""
    app.mount(ASSETS, StaticFiles(directory=assets_directory()), name="api-docs-assets")

    @app.get(DOCS, include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            # Swagger UI would otherwise ask validator.swagger.io to judge the schema.
            swagger_ui_parameters={"validatorUrl": None},
        )
