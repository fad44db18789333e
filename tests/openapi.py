"""The schemathesis checks every API of the network must pass: no server error, and every answer
documented (status code, content type, headers, body schema, formats included)."""

from __future__ import annotations

from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CONFORMANCE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Schema-invalid requests must also be refused with a 4xx.
REJECTION_CHECKS = [*CONFORMANCE_CHECKS, negative_data_rejection]
