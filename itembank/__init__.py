"""Item banks: skill standards, items, bank versions and their files."""

from .bank import ItemBank
from .io import (
    DataFormatError,
    ResponseData,
    align_responses,
    bank_from_document,
    bank_to_document,
    read_bank,
    read_responses,
    write_bank,
    write_scores,
)

__all__ = ["DataFormatError", "ItemBank", "ResponseData", "align_responses",
           "bank_from_document", "bank_to_document", "read_bank", "read_responses",
           "write_bank", "write_scores"]
