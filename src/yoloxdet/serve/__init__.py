"""``yoloxdet serve``: an HTTP detection service (FastAPI + uvicorn) with dynamic batching, a web page and
Prometheus metrics, plus sharded offline prediction (``batch_predict``).

Modules: ``config`` (the settings), ``upload`` (checking and decoding uploaded bytes), ``batching`` (the queue
and the shared forward pass), ``metrics``, ``app`` (routes, limits, the page in ``static/``),
``batch_predict``.
"""
