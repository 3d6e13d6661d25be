"""Key material (and sealed plaintext) never reaches logs, reprs, errors, audit rows or command
output, on the success paths and on every failure path."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import traceback
from collections.abc import Iterator

import pytest
import structlog
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from apps.audit.models import AuditEntry
from apps.keys.errors import SealedPayloadError
from apps.keys.keyring import configured_keyring
from apps.keys.models import SealedPayload
from apps.keys.services import open_payload, reencrypt_all, seal_payload
from tests.keys.conftest import AtRestKeys

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

PLAINTEXT = b"kafka-sasl-password-Zq8vW2"


@pytest.fixture
def rendered_logs() -> Iterator[io.StringIO]:
    """Django's configured root handler (structlog JSON, redaction included) into a buffer."""
    stream = io.StringIO()
    handler = {**django_settings.LOGGING["handlers"]["stderr"], "stream": stream}
    logging.config.dictConfig({**django_settings.LOGGING, "handlers": {"stderr": handler},
                               "root": {"handlers": ["stderr"], "level": "DEBUG"}})
    yield stream
    structlog.contextvars.clear_contextvars()
    logging.config.dictConfig(django_settings.LOGGING)


def _assert_clean(text: str, keys: AtRestKeys) -> None:
    for secret in [*keys.secrets(), PLAINTEXT.decode(), PLAINTEXT.hex(), repr(PLAINTEXT)]:
        assert secret not in text


def _error_text(error: BaseException) -> str:
    return "".join([str(error), repr(error), *traceback.format_exception(error)])


def test_nothing_secret_reaches_logs_reprs_audit_or_output_on_success(
        at_rest_keys: AtRestKeys, rendered_logs: io.StringIO) -> None:
    at_rest_keys.use("k1", "k2")
    row = seal_payload(purpose="producer-credential", plaintext=PLAINTEXT, context="producer:1")
    assert open_payload(row) == PLAINTEXT
    at_rest_keys.use("k2", "k1")
    result = reencrypt_all(batch_size=1)
    out, err = io.StringIO(), io.StringIO()
    call_command("reencrypt", "--dry-run", stdout=out, stderr=err)
    keyring = configured_keyring()

    logs = rendered_logs.getvalue()
    assert "keys.reencrypt_batch" in logs  # the capture works: there is something to check
    texts = [logs, out.getvalue(), err.getvalue(), repr(keyring), str(keyring), repr(row),
             str(row), repr(result), json.dumps(result.as_dict()),
             json.dumps(list(AuditEntry.objects.values("target", "details")))]
    _assert_clean("\n".join(texts), at_rest_keys)


def test_nothing_secret_reaches_errors_or_logs_on_failure(
        at_rest_keys: AtRestKeys, rendered_logs: io.StringIO) -> None:
    at_rest_keys.use("k1", "k2")
    rows = [seal_payload(purpose="p", plaintext=PLAINTEXT, context=str(index))
            for index in range(3)]
    SealedPayload.objects.filter(id=rows[0].id).update(ciphertext=b"\x00" * 40)
    SealedPayload.objects.filter(id=rows[1].id).update(key_id="k2")
    SealedPayload.objects.filter(id=rows[2].id).update(key_id="gone")
    texts = []
    for row in rows:
        with pytest.raises(SealedPayloadError) as caught:
            open_payload(SealedPayload.objects.get(id=row.id))
        texts.append(_error_text(caught.value))
    at_rest_keys.use("k2", "k1")
    with pytest.raises(SealedPayloadError) as unknown:
        reencrypt_all()
    texts.append(_error_text(unknown.value))
    SealedPayload.objects.filter(id=rows[2].id).delete()
    with pytest.raises(CommandError) as failed:
        call_command("reencrypt", stdout=io.StringIO(), stderr=io.StringIO())
    texts.append(_error_text(failed.value))
    at_rest_keys.path("k1").chmod(0o644)
    with pytest.raises(SealedPayloadError) as unusable:
        seal_payload(purpose="p", plaintext=PLAINTEXT)
    texts.append(_error_text(unusable.value))

    assert "keys.reencrypt_failed" in rendered_logs.getvalue()
    texts += [rendered_logs.getvalue(),
              json.dumps(list(AuditEntry.objects.values("target", "details")))]
    _assert_clean("\n".join(texts), at_rest_keys)
