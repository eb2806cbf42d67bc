"""The ASGI application for uvicorn (``parley.asgi:app``), configured from the environment.

Each worker process imports this module, so each sets up the same JSON logging and the same
garbage-collector settings.
"""

import gc

from parley.app import create_app
from parley.config import load_settings
from parley.logs import setup_logging

settings = load_settings()
setup_logging(settings.log_level)
app = create_app(settings)

# The ~140,000 objects made by importing the framework, the providers and the models live as
# long as the process. Frozen, the collector no longer walks them on every full collection
# (that walk stalled every in-flight request for 100-300 ms about once a second under load).
# A larger first threshold: a request's objects are freed by reference counting as it ends, so
# young collections mostly found in-flight requests' live objects and pushed them into older
# generations, which made the full collections come that often.
gc.freeze()
gc.set_threshold(50_000, 10, 10)
