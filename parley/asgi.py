"""The ASGI application for uvicorn (``parley.asgi:app``), configured from the environment.

Each worker process imports this module, so each sets up the same JSON logging.
"""

from parley.app import create_app
from parley.config import load_settings
from parley.logs import setup_logging

settings = load_settings()
setup_logging(settings.log_level)
app = create_app(settings)
