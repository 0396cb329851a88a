"""Stable reason codes for quarantined records and rejected files.

The codes are part of the public contract: they are stored in ``quarantined_records.reason_code``,
carried by :class:`~marketplace.errors.RejectedFileError`, shown by the CLI and asserted by tests.
Never rename one; add new ones instead. :data:`FIX_HINTS` says, for each code, how a provider fixes it.
"""

from __future__ import annotations

import enum

__all__ = ["FILE_LEVEL_REASONS", "FIX_HINTS", "RECORD_LEVEL_REASONS", "ReasonCode"]


class ReasonCode(enum.StrEnum):
    # ---- record level: the record goes to quarantined_records, the file may still be accepted ----
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    NAN_LITERAL = "nan_literal"
    DEEPLY_NESTED = "deeply_nested"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_UNICODE = "invalid_unicode"  # lone surrogate escapes such as "\ud800"
    NUL_BYTE = "nul_byte"
    CONTROL_CHARACTERS = "control_characters"
    LINE_TOO_LONG = "line_too_long"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    EMPTY_TEXT = "empty_text"
    TEXT_TOO_SHORT = "text_too_short"
    TEXT_TOO_LONG = "text_too_long"
    METADATA_TOO_LONG = "metadata_too_long"
    RAGGED_ROW = "ragged_row"
    CSV_MALFORMED_ROW = "csv_malformed_row"

    # ---- file level: RejectedFileError, nothing of the file is written ----
    FILE_NOT_FOUND = "file_not_found"
    UNREADABLE_FILE = "unreadable_file"
    SYMLINK_NOT_ALLOWED = "symlink_not_allowed"
    EMPTY_FILE = "empty_file"
    NO_RECORDS = "no_records"
    FILE_TOO_LARGE = "file_too_large"
    UNKNOWN_FORMAT = "unknown_format"
    FORMAT_MISMATCH = "format_mismatch"
    UNSUPPORTED_ENCODING = "unsupported_encoding"
    BINARY_CONTENT = "binary_content"
    JSON_ARRAY_NOT_JSONL = "json_array_not_jsonl"
    CSV_UNMATCHED_QUOTE = "csv_unmatched_quote"
    CSV_BAD_HEADER = "csv_bad_header"
    CSV_LINE_TOO_LONG = "csv_line_too_long"
    PARQUET_BAD_MAGIC = "parquet_bad_magic"
    PARQUET_TRUNCATED = "parquet_truncated"
    PARQUET_CORRUPT = "parquet_corrupt"
    HF_DATASET_CORRUPT = "hf_dataset_corrupt"
    NOT_A_DATASET_FOLDER = "not_a_dataset_folder"
    WRONG_FIELD_MAPPING = "wrong_field_mapping"
    WRONG_FIELD_TYPE = "wrong_field_type"
    SCHEMA_DRIFT = "schema_drift"
    TOO_MANY_QUARANTINED = "too_many_quarantined"
    GZIP_CORRUPT = "gzip_corrupt"
    ZIP_CORRUPT = "zip_corrupt"
    ZIP_UNSAFE_PATH = "zip_unsafe_path"
    ZIP_SYMLINK = "zip_symlink"
    ZIP_ENCRYPTED = "zip_encrypted"
    ZIP_TOO_MANY_MEMBERS = "zip_too_many_members"
    ZIP_NO_DATA_MEMBERS = "zip_no_data_members"
    ZIP_UNSUPPORTED_MEMBER = "zip_unsupported_member"
    NESTED_ARCHIVE = "nested_archive"
    DECOMPRESSED_TOO_LARGE = "decompressed_too_large"
    COMPRESSION_RATIO_TOO_HIGH = "compression_ratio_too_high"


RECORD_LEVEL_REASONS: frozenset[ReasonCode] = frozenset(
    {
        ReasonCode.INVALID_JSON,
        ReasonCode.NOT_AN_OBJECT,
        ReasonCode.NAN_LITERAL,
        ReasonCode.DEEPLY_NESTED,
        ReasonCode.INVALID_UTF8,
        ReasonCode.INVALID_UNICODE,
        ReasonCode.NUL_BYTE,
        ReasonCode.CONTROL_CHARACTERS,
        ReasonCode.LINE_TOO_LONG,
        ReasonCode.MISSING_FIELD,
        ReasonCode.WRONG_TYPE,
        ReasonCode.EMPTY_TEXT,
        ReasonCode.TEXT_TOO_SHORT,
        ReasonCode.TEXT_TOO_LONG,
        ReasonCode.METADATA_TOO_LONG,
        ReasonCode.RAGGED_ROW,
        ReasonCode.CSV_MALFORMED_ROW,
    }
)
FILE_LEVEL_REASONS: frozenset[ReasonCode] = frozenset(set(ReasonCode) - RECORD_LEVEL_REASONS)

FIX_HINTS: dict[ReasonCode, str] = {
    ReasonCode.INVALID_JSON: "make every line one complete JSON object",
    ReasonCode.NOT_AN_OBJECT: "each JSONL line must be a JSON object like {\"text\": \"...\"}",
    ReasonCode.NAN_LITERAL: "NaN/Infinity are not JSON; write null or a string",
    ReasonCode.DEEPLY_NESTED: "flatten the record; only top-level string fields are read",
    ReasonCode.INVALID_UTF8: "re-encode the file as UTF-8",
    ReasonCode.INVALID_UNICODE: "remove lone surrogate escapes (\\ud800-\\udfff) from the strings",
    ReasonCode.NUL_BYTE: "remove NUL (\\x00) characters",
    ReasonCode.CONTROL_CHARACTERS: "remove control characters other than tab and newline",
    ReasonCode.LINE_TOO_LONG: "split the record or raise MKT_MAX_LINE_BYTES",
    ReasonCode.MISSING_FIELD: "give every record the mapped text field(s)",
    ReasonCode.WRONG_TYPE: "text fields must be strings",
    ReasonCode.EMPTY_TEXT: "drop records without text",
    ReasonCode.TEXT_TOO_SHORT: "drop very short records or lower MKT_MIN_TEXT_CHARS",
    ReasonCode.TEXT_TOO_LONG: "split long documents or raise MKT_MAX_TEXT_CHARS",
    ReasonCode.METADATA_TOO_LONG: "keep source/licence under 200 characters",
    ReasonCode.RAGGED_ROW: "every CSV row needs as many fields as the header",
    ReasonCode.CSV_MALFORMED_ROW: "quote fields that contain the delimiter or quotes (RFC 4180)",
    ReasonCode.FILE_NOT_FOUND: "check the path",
    ReasonCode.UNREADABLE_FILE: "check the file's permissions and that it is a regular file",
    ReasonCode.SYMLINK_NOT_ALLOWED: "submit the file itself, not a symbolic link",
    ReasonCode.EMPTY_FILE: "the file has no bytes; submit the real export",
    ReasonCode.NO_RECORDS: "the file has no data records (only a header or blank lines)",
    ReasonCode.FILE_TOO_LARGE: "split the file or raise MKT_MAX_FILE_BYTES",
    ReasonCode.UNKNOWN_FORMAT: "name the file .jsonl/.csv/.tsv/.parquet or pass --format",
    ReasonCode.FORMAT_MISMATCH: "the content does not match the declared format; fix --format or the extension",
    ReasonCode.UNSUPPORTED_ENCODING: "re-save the file as UTF-8 (without a UTF-16/32 byte-order mark)",
    ReasonCode.BINARY_CONTENT: "this is not a text file; export the data as UTF-8 JSONL/CSV or Parquet",
    ReasonCode.JSON_ARRAY_NOT_JSONL: "convert the JSON array to one object per line (e.g. jq -c '.[]')",
    ReasonCode.CSV_UNMATCHED_QUOTE: "close the quoted field that starts there (RFC 4180 quoting)",
    ReasonCode.CSV_BAD_HEADER: "give the CSV a header row with unique, non-empty column names",
    ReasonCode.CSV_LINE_TOO_LONG: "split the row or raise MKT_MAX_LINE_BYTES",
    ReasonCode.PARQUET_BAD_MAGIC: "the file does not start with PAR1; re-export it as Parquet",
    ReasonCode.PARQUET_TRUNCATED: "the Parquet footer is missing (file cut short); upload it again",
    ReasonCode.PARQUET_CORRUPT: "re-export the Parquet file",
    ReasonCode.HF_DATASET_CORRUPT: "save the dataset again with Dataset.save_to_disk",
    ReasonCode.NOT_A_DATASET_FOLDER: "pass a file, or a folder written by Dataset.save_to_disk",
    ReasonCode.WRONG_FIELD_MAPPING: "pass --text-field F or --prompt-field P --response-field R naming real fields",
    ReasonCode.WRONG_FIELD_TYPE: "the mapped column must hold strings",
    ReasonCode.SCHEMA_DRIFT: "use the same fields in every record/member of the file",
    ReasonCode.TOO_MANY_QUARANTINED: (
        "fix the quarantined records (see the reasons) or raise MKT_MAX_QUARANTINE_FRACTION"
    ),
    ReasonCode.GZIP_CORRUPT: "the gzip stream is damaged or cut short; compress the file again",
    ReasonCode.ZIP_CORRUPT: "the zip archive is damaged; create it again",
    ReasonCode.ZIP_UNSAFE_PATH: "archive members must use relative paths without '..'",
    ReasonCode.ZIP_SYMLINK: "archive members must be regular files, not symbolic links",
    ReasonCode.ZIP_ENCRYPTED: "submit an unencrypted archive",
    ReasonCode.ZIP_TOO_MANY_MEMBERS: "put fewer files in one archive or raise MKT_MAX_ARCHIVE_MEMBERS",
    ReasonCode.ZIP_NO_DATA_MEMBERS: "the archive holds no .jsonl/.csv/.tsv/.parquet member",
    ReasonCode.ZIP_UNSUPPORTED_MEMBER: "archive members must be .jsonl/.csv/.tsv/.parquet files",
    ReasonCode.NESTED_ARCHIVE: "do not put archives inside archives",
    ReasonCode.DECOMPRESSED_TOO_LARGE: "split the data or raise MKT_MAX_UNCOMPRESSED_BYTES",
    ReasonCode.COMPRESSION_RATIO_TOO_HIGH: "this looks like a decompression bomb; or raise MKT_MAX_COMPRESSION_RATIO",
}
