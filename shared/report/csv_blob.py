"""A CSV written to a block blob in staged blocks and committed once (``Put Block`` + ``Put Block List``).

Rows are encoded into an in-memory buffer; each time it reaches ``block_bytes`` (4 MiB by default) it is
staged as one block and dropped, so memory holds at most one block whatever the number of rows. Nothing is
visible until :meth:`BlockCsvWriter.commit`: a run that dies midway leaves only uncommitted blocks, which the
next commit of the blob discards (and the service garbage-collects after a week), never a partial CSV.

The file is UTF-8 with a byte-order mark, so Excel opens accents and non-Latin names correctly.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

DEFAULT_BLOCK_BYTES = 4 * 1024 * 1024
_BOM = "\ufeff"


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
        self._text = io.StringIO()
        self._csv = csv.writer(self._text, lineterminator="\r\n")
        self._blocks: list[str] = []
        self.rows = 0
        self.bytes = 0
        self._text.write(_BOM)
        self._csv.writerow(header)

    def write(self, row: Sequence[str]) -> None:
        self._csv.writerow(row)
        self.rows += 1
        if self._text.tell() >= self._block_bytes:  # characters, close enough to bytes for the threshold
            self._stage()

    def _stage(self) -> None:
        data = self._text.getvalue().encode("utf-8")
        if not data:
            return
        block_id = base64.b64encode(f"{self._run}-{len(self._blocks):08d}".encode("ascii")).decode("ascii")
        self._blob.stage_block(block_id, data, length=len(data))
        self._blocks.append(block_id)
        self.bytes += len(data)
        self._text.seek(0)
        self._text.truncate(0)

    def commit(self) -> int:
        """Stage what is buffered and commit every block as the blob's content. Returns the size in bytes."""
        from azure.storage.blob import BlobBlock, ContentSettings

        self._stage()
        self._blob.commit_block_list(
            [BlobBlock(block_id=block_id) for block_id in self._blocks],
            content_settings=ContentSettings(content_type="text/csv; charset=utf-8"),
        )
        return self.bytes
