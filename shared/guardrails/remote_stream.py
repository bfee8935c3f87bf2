"""Remote output checks (Azure AI Content Safety) on a stream: relayed events are held back until the text in them
has passed, in batches of BATCH characters, each analysed with the last OVERLAP characters already passed in front
of it — so harmful text split across two batches is analysed whole. Held events never leave when a batch is
blocked. The cost: the client sees the first text only once a batch (or the whole answer, if shorter) is analysed,
about one Content Safety round trip per batch."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

BATCH = 600  # characters of new text per analysis
OVERLAP = 200  # characters of already-passed text analysed again in front of each batch


class RemoteWindow:
    def __init__(self, check: Callable[[str], Awaitable[None]], *, batch: int | None = None,
                 overlap: int | None = None) -> None:
        self._check = check
        self._batch = BATCH if batch is None else batch
        self._overlap = OVERLAP if overlap is None else overlap
        self._held: list[bytes] = []
        self._text = ""
        self._context = ""
        self.analysed = 0  # batches sent, for tests and the verdict count
        self.passed: list[str] = []  # the text that left (batches that passed), the only completion text logged

    async def feed(self, events: bytes, text: str) -> bytes:
        """Hold `events` (whose new text is `text`); the held events once a full batch has passed, else b""."""
        if events:
            self._held.append(events)
        self._text += text
        return await self._release() if len(self._text) >= self._batch else b""

    async def flush(self) -> bytes:
        """At the end of the stream: the last (short) batch, analysed, then everything still held."""
        return await self._release()

    async def _release(self) -> bytes:
        if self._text:
            self.analysed += 1
            await self._check(self._context + self._text)  # raises when a check blocks: nothing held leaves
            self._context = (self._context + self._text)[-self._overlap:]
            self.passed.append(self._text)
            self._text = ""
        out, self._held = b"".join(self._held), []
        return out
