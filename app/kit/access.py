"""Notes a route leaves in its request's state for the access log line (app/edge.py)."""

# The send a route accepted: its access line carries this as `requestId`.
SEND_REQUEST_ID = "herald_send_request_id"
