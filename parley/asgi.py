"""The ASGI application for uvicorn (``parley.asgi:app``), configured from the environment."""

from parley.app import create_app

app = create_app()
