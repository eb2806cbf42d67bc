"""v8 image attachments go to the model provider as image_url parts, and a provider that fetches
them (a self-hosted one sits inside the host's network) must not be sent toward local, private
or non-http addresses: they are refused before anything is sent anywhere, as documents are."""

from __future__ import annotations

import pytest

from tests.conftest import cli_json
from tests.v8_helpers import V8

PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def v8(parley) -> V8:
    return V8(parley.url, cli_json(parley.database_url, "integrations", "create", "--name", "images", "--json"))


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://127.0.0.1:8000/v8/models",
        "http://localhost/x.png",
        "http://[::1]/x.png",
        "http://10.0.0.1/x.png",
        "http://192.168.1.1/x.png",
        "gopher://example.com/x",
        "javascript:alert(1)",
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_local_and_private_image_urls_are_refused_before_anything_is_sent(parley, v8, url, stream):
    conversation = v8.conversation()
    upstream_before = len(parley.upstream.rec.requests)
    attachments = [{"type": "image", "url": url, "metadata": {}}]
    r = v8.send(conversation["id"], content="what is this?", stream=stream, attachments=attachments)
    assert r.status_code == 400, r.text
    assert any(w in r.json()["error"] for w in ("local or private", "Only http(s)", "Cannot resolve")), r.text
    assert len(parley.upstream.rec.requests) == upstream_before  # the provider saw nothing
    assert v8.messages(conversation["id"]) == []  # and nothing was stored


@pytest.mark.parametrize("url", [PNG, "https://93.184.215.14/cat.png"])
def test_public_and_inline_images_still_go_to_the_model(parley, v8, url):
    conversation = v8.conversation()
    r = v8.send(conversation["id"], content="what is this?", stream=False, attachments=[{"type": "image", "url": url}])
    assert r.status_code == 200, r.text
    parts = parley.upstream.rec.last()["messages"][-1]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": url}}


def test_an_image_data_url_that_is_not_base64_is_400(v8):
    conversation = v8.conversation()
    attachments = [{"type": "image", "url": "data:image/png;base64,@@@not base64@@@"}]
    r = v8.send(conversation["id"], content="x", stream=False, attachments=attachments)
    assert r.status_code == 400 and "base64" in r.json()["error"], r.text
