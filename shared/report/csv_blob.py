"""A CSV written to a block blob in staged blocks and committed once (``Put Block`` + ``Put Block List``).

Rows are formatted into a small text buffer, moved as UTF-8 into a byte buffer every 64 KiB (a large
``StringIO`` would cost up to 4 bytes per character once a name is not Latin-1), and each time the bytes
reach ``block_bytes`` (4 MiB by default) they are staged as one block and dropped, so memory holds at most
one block whatever the number of rows. A block that cannot be staged or committed is
:class:`~shared.core.errors.StorageUnavailable` (the run then fails visibly). Nothing is
visible until :meth:`BlockCsvWriter.commit`: a run that dies midway leaves only uncommitted blocks, which the
next commit of the blob discards (and the service garbage-collects after a week), never a partial CSV.

The file is UTF-8 with a byte-order mark, so Excel opens accents and non-Latin names correctly.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shared.report.store import _storage

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

DEFAULT_BLOCK_BYTES = 4 * 1024 * 1024
_BOM = "\ufeff"
_TEXT_CHUNK = 64 * 1024
_LINE_END = "\r\n"
_EMPTY_FOR_NONE: dict[Any, str] = {None: ""}


def _plain_lines(columns: Sequence[Sequence[Any]]) -> str | None:
    """The CSV lines of these columns when no field needs quoting, else None (the caller lets ``csv`` write
    them). ``csv``'s minimal quoting quotes a field only when it holds the delimiter, the quote character or a
    line-terminator character; without any, its line is the fields joined by commas, so joining them here
    writes the very same bytes at a fraction of the CPU. Whether any field holds one is read off the joined
    text by counting: exactly the commas and line breaks the join put there, and no quote."""
    if len(columns) < 2:  # csv writes a lone empty field as "" (a blank line would read as no row)
        return None
    try:
        texts = [list(map(_EMPTY_FOR_NONE.get, col, col)) if None in col else col for col in columns]
        lines = _LINE_END.join(map(",".join, zip(*texts, strict=True)))
    except TypeError:  # a field that is not text (or not hashable): csv's str() decides how it reads
        return None
    rows = len(columns[0])
    if (
        '"' in lines
        or lines.count(",") != rows * (len(columns) - 1)
        or lines.count("\r") != rows - 1
        or lines.count("\n") != rows - 1
    ):
        return None
    return lines + _LINE_END


class BlockCsvWriter:
    """Streams rows to ``blob`` (see module docstring). ``run_id`` keeps this run's block ids apart from
    another run's uncommitted blocks of the same blob."""

    def __init__(
        self,
        blob: BlobClient,
        header: Sequence[str],
        *,
        run_id: str,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        self._blob = blob
        self._run = run_id.replace("-", "")[:16]
        self._block_bytes = block_bytes
        self._text_chunk = min(_TEXT_CHUNK, block_bytes)
        self._text = io.StringIO()
        self._csv = csv.writer(self._text, lineterminator=_LINE_END)
        self._bytes = bytearray()
        self._blocks: list[str] = []
        self.rows = 0
        self.bytes = 0
        self._text.write(_BOM)
        self._csv.writerow(header)

    def write(self, row: Sequence[str]) -> None:
        self._csv.writerow(row)
        self.rows += 1
        if self._text.tell() >= self._text_chunk:
            self._move_text()
            if len(self._bytes) >= self._block_bytes:
                self._stage()

    def write_rows(self, rows: Sequence[Sequence[str]]) -> None:
        """Many rows at once (a page): one size check for all of them."""
        self._csv.writerows(rows)
        self.rows += len(rows)
        if self._text.tell() >= self._text_chunk:
            self._move_text()
            if len(self._bytes) >= self._block_bytes:
                self._stage()

    def write_columns(self, columns: Sequence[Sequence[Any]]) -> None:
        """Rows given column by column (equal lengths; None is an empty field): the same bytes as
        ``write_rows(list(zip(*columns)))``, faster when no field needs quoting (see :func:`_plain_lines`)."""
        if not columns or not columns[0]:
            return
        lines = _plain_lines(columns)
        if lines is None:
            self._csv.writerows(zip(*columns, strict=True))
        else:
            self._text.write(lines)
        self.rows += len(columns[0])
        if self._text.tell() >= self._text_chunk:
            self._move_text()
            if len(self._bytes) >= self._block_bytes:
                self._stage()

    def _move_text(self) -> None:
        self._bytes += self._text.getvalue().encode("utf-8")
        self._text.seek(0)
        self._text.truncate(0)

    def _stage(self) -> None:
        if not self._bytes:
            return
        data = bytes(self._bytes)
        self._bytes = bytearray()
        block_id = base64.b64encode(f"{self._run}-{len(self._blocks):08d}".encode("ascii")).decode("ascii")
        _storage(
            "staging a block of a report CSV",
            lambda: self._blob.stage_block(block_id, data, length=len(data)),
        )
        self._blocks.append(block_id)
        self.bytes += len(data)

    def commit(self) -> int:
        """Stage what is buffered and commit every block as the blob's content. Returns the size in bytes."""
        from azure.storage.blob import BlobBlock, ContentSettings  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        self._move_text()
        self._stage()
        _storage(
            "committing a report CSV",
            lambda: self._blob.commit_block_list(
                [BlobBlock(block_id=block_id) for block_id in self._blocks],
                content_settings=ContentSettings(content_type="text/csv; charset=utf-8"),
            ),
        )
        return self.bytes
