"""Item banks in storage: the database, its schema and repositories, and files."""

from .bank import ItemBank
from .errors import DataFormatError
from .io import (
    ResponseData,
    ResponseLog,
    align_responses,
    bank_from_document,
    bank_to_document,
    read_bank,
    read_item_tags,
    read_json,
    read_response_log,
    read_responses,
    read_table_columns,
    write_bank,
    write_json,
    write_persons,
    write_scores,
    write_simulated_log,
)

__all__ = ["DataFormatError", "ItemBank", "ResponseData", "ResponseLog", "align_responses",
           "bank_from_document", "bank_to_document", "read_bank", "read_item_tags", "read_json",
           "read_response_log", "read_responses", "read_table_columns", "write_persons",
           "write_bank", "write_json", "write_scores", "write_simulated_log"]
