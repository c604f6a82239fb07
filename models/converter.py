"""The data converter of every Temporal client and worker: pydantic's, reading payloads back as
recorded text (models.text.recorded).

Payloads are checked where they come in (models.text, at every entry point); what Temporal hands
back (a workflow's input, an update replayed from history, an activity's result) was checked then,
or under an older rule, and must stay readable: a stricter rule refusing an old history would
wedge that dispute on its next replay.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import temporalio.api.common.v1
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

from models.codec import EncryptionCodec, PayloadKeys
from models.text import recorded


class _RecordedJson(PydanticJSONPlainPayloadConverter):
    def from_payload(
        self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None
    ) -> Any:
        with recorded():
            return super().from_payload(payload, type_hint)


class RecordedPayloadConverter(CompositePayloadConverter):
    """Pydantic's payload converter (temporalio.contrib.pydantic), its JSON part reading back
    recorded text."""

    def __init__(self) -> None:
        json_converter = _RecordedJson()
        super().__init__(
            *(
                json_converter if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


data_converter = DataConverter(payload_converter_class=RecordedPayloadConverter)


def encrypted(keys: PayloadKeys | None) -> DataConverter:
    """The data converter with payloads sealed under `keys` (models.codec), and failures'
    messages and stack traces moved into a sealed payload too (they can quote what a person
    wrote); without keys, the plain converter (development without a key only)."""
    if keys is None:
        return data_converter
    return dataclasses.replace(
        data_converter,
        payload_codec=EncryptionCodec(keys),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
