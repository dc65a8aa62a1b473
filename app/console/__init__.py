"""The admin console: the OpenAPI document, and Swagger UI and ReDoc served from the wheel."""
