"""OpenAI's Responses API over Parley's one chat turn.

``request`` validates a Responses request and translates it into the chat form every provider
takes, ``items`` does the same for its input items; ``output`` builds the response object and
its output items (whole, or grown from stream chunks); ``encoder`` puts them on the wire;
``transcript`` and ``store`` keep responses so ``previous_response_id`` can continue from them.
"""
