"""The HTTP layer, at the edge: a thin shell over the pipeline's engine. app.py assembles the app; routes/ has
one router per area; errors.py maps the pipeline's errors to status codes (the only place that does);
auth, body_limit, request_id and inspector are ASGI middleware and the inspector page's server side."""
