"""/docs works offline: every asset it loads is served by Parley; the OpenAPI document declares
how each dialect authenticates and the project session header."""

from __future__ import annotations

import re
from pathlib import Path

import pytest


def docs_page(parley) -> tuple[str, list[str]]:
    with parley.client() as http:
        r = http.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    urls = re.findall(r'(?:src|href)="([^"]+)"', r.text) + re.findall(r"url: '([^']+)'", r.text)
    return r.text, urls


def test_docs_page_loads_only_local_assets(parley):
    html, urls = docs_page(parley)
    assert "http://" not in html and "https://" not in html  # no CDN, no validator badge, no favicon host
    assert len(urls) == 4, urls  # the CSS, the favicon, the script, the OpenAPI document
    kinds = {}
    with parley.client() as http:
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), url
            r = http.get(url)
            assert r.status_code == 200, url
            assert len(r.content) > 0
            kinds[url.rsplit(".", 1)[-1]] = (r.headers["content-type"], r.content)
    assert kinds["js"][0].split(";")[0] in ("text/javascript", "application/javascript")
    assert b"SwaggerUIBundle" in kinds["js"][1]
    assert kinds["css"][0].startswith("text/css") and b".swagger-ui" in kinds["css"][1]
    assert kinds["json"][0] == "application/json"


def test_no_blank_redoc_page(parley):
    with parley.client() as http:
        assert http.get("/redoc").status_code == 404  # it would load from a CDN


def spec(parley) -> dict:
    with parley.client() as http:
        return http.get("/openapi.json").json()


def test_openapi_declares_each_dialects_authentication(parley):
    doc = spec(parley)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["gatewayKey"] == {**schemes["gatewayKey"], "type": "http", "scheme": "bearer"}
    assert schemes["xApiKey"] == {**schemes["xApiKey"], "type": "apiKey", "in": "header", "name": "x-api-key"}
    assert schemes["xGoogApiKey"] == {
        **schemes["xGoogApiKey"],
        "type": "apiKey",
        "in": "header",
        "name": "x-goog-api-key",
    }
    assert schemes["v8Token"]["scheme"] == "bearer" and "ek-" in schemes["v8Token"]["bearerFormat"]
    assert schemes["projectKey"]["scheme"] == "bearer"
    paths = doc["paths"]
    assert paths["/v1/chat/completions"]["post"]["security"] == [
        {"gatewayKey": []},
        {"xApiKey": []},
        {"xGoogApiKey": []},
    ]
    assert paths["/v1/models"]["get"]["security"][0] == {"gatewayKey": []}
    assert paths["/v8/chat/conversations"]["post"]["security"] == [{"v8Token": []}]
    assert paths["/v8/memories/{memory_id}/contents"]["post"]["security"] == [{"v8Token": []}]
    chat = "/api/project/{project_id}/integration/api/chat/completions"
    assert paths[chat]["post"]["security"] == [{"projectKey": []}]
    assert "security" not in paths["/healthz"]["get"]


@pytest.mark.parametrize("path", ["chat/completions", "sessions"])
def test_openapi_documents_the_session_header(parley, path):
    op = spec(parley)["paths"][f"/api/project/{{project_id}}/integration/api/{path}"]["post"]
    header = next(p for p in op["parameters"] if p["in"] == "header")
    assert header["name"] == "X-Session-ID" and header["required"] is False and header["description"]
    assert "X-Session-ID" in op["responses"]["200"]["headers"]


# ---- a real browser, offline: Debian's chromium driven by playwright -----------------------

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")
def test_docs_in_a_browser_render_offline_and_authorize_works(parley):
    from playwright.sync_api import sync_playwright

    outside: list[str] = []

    def only_parley(route) -> None:
        if route.request.url.startswith(parley.url + "/"):
            route.continue_()
        else:  # the page may reach nothing but this server
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.route("**/*", only_parley)
            page.goto(parley.url + "/docs")
            page.wait_for_selector(".swagger-ui .info .title", timeout=60_000)
            assert page.inner_text(".swagger-ui .info .title").startswith("Parley")
            page.click("button.btn.authorize")
            gateway = page.locator(".auth-container", has=page.locator("h4", has_text="gatewayKey"))
            gateway.locator("input").fill(parley.key)
            gateway.locator("button.authorize").click()
            page.click(".modal-ux button.btn-done")
            models = page.locator(".opblock-get", has=page.locator(".opblock-summary-path", has_text="/v1/models"))
            models.first.locator(".opblock-summary").click()
            models.first.locator("button.try-out__btn").click()
            with page.expect_response(lambda r: r.url == parley.url + "/v1/models") as response:
                models.first.locator("button.execute").click()
            assert response.value.status == 200
            assert response.value.request.headers["authorization"] == f"Bearer {parley.key}"
            shown = models.first.locator(".live-responses-table tr.response .response-col_status").first
            assert shown.inner_text(timeout=30_000).strip() == "200"
        finally:
            browser.close()
    assert outside == []
