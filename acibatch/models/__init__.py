"""The API's models, defined once with pydantic v2; validation, canonical JSON and the OpenAPI schemas derive from
them."""
