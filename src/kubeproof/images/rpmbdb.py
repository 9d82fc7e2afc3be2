"""The values of a BerkeleyDB hash database: rpm's `Packages` file before rpm 4.16 (RHEL
and CentOS 7 and 8, UBI 8, Amazon Linux 2), one RPM header blob per value.

Read page by page, without BerkeleyDB and without following its hash function (as rpm's
own read-only backend, bdb_ro, also must not assume one): page 0 is the metadata page
(magic 0x061561 at byte 12, in the file's byte order, which tells that order; page size
at 20; last page number at 32). Every page starts with a 26-byte header (its number at 8,
next page at 16, item count at 20, free-space offset at 22, page type at 25). Hash pages
(types 2 and 13) hold an array of 16-bit item offsets from byte 26, items in key/value
pairs growing down from the end of the page; an item is a type byte then either the data
(type 1) or, for a value too big for a page (type 3), 3 pad bytes, the first overflow
page and the total length. Overflow pages (type 7) chain the data: `free-space offset`
bytes from byte 26, then the next page."""

from __future__ import annotations

import struct

HASH_MAGIC = 0x00061561
BTREE_MAGIC = 0x00053162
_PAGE_HEADER = 26
_HASH_PAGES = (2, 13)
_OVERFLOW_PAGE = 7
_KEYDATA, _OFFPAGE = 1, 3
MAX_VALUE_BYTES = 256 << 20
MAX_PAGES = 4 << 20


class BerkeleyError(ValueError):
    """A BerkeleyDB file that cannot be read; the message says why."""


def berkeley_order(data: bytes) -> str | None:
    """`<` or `>` for a BerkeleyDB hash database, else None."""
    if len(data) < 16:
        return None
    for order in "<>":
        if struct.unpack_from(order + "I", data, 12)[0] == HASH_MAGIC:
            return order
    return None


def is_berkeley_btree(data: bytes) -> bool:
    return len(data) >= 16 and BTREE_MAGIC in (
        struct.unpack_from("<I", data, 12)[0],
        struct.unpack_from(">I", data, 12)[0],
    )


class _Pages:
    def __init__(self, data: bytes, order: str) -> None:
        self.data, self.order = data, order
        self.size, self.last = struct.unpack_from(order + "I", data, 20)[0], 0
        if self.size < 512 or self.size > 65536 or self.size & (self.size - 1):
            raise BerkeleyError(f"page size {self.size} is not a BerkeleyDB page size")
        self.last = min(struct.unpack_from(order + "I", data, 32)[0], len(data) // self.size - 1)
        if self.last > MAX_PAGES:
            raise BerkeleyError(f"{self.last} pages, over {MAX_PAGES}")

    def page(self, number: int) -> bytes | None:
        """Page `number`, or None when it is missing or is not what it says (a page never
        written is all zeros: an empty hash bucket)."""
        if not 0 < number <= self.last:
            return None
        page = self.data[number * self.size : (number + 1) * self.size]
        if struct.unpack_from(self.order + "I", page, 8)[0] != number:
            return None
        return page

    def overflow(self, first: int, length: int) -> bytes:
        if length > MAX_VALUE_BYTES:
            raise BerkeleyError(f"value of {length} bytes, over {MAX_VALUE_BYTES}")
        chunks, total, number, seen = [], 0, first, set()
        while total < length:
            page = self.page(number)
            if page is None or page[25] != _OVERFLOW_PAGE or number in seen:
                raise BerkeleyError(f"broken overflow chain at page {number}")
            seen.add(number)
            used = struct.unpack_from(self.order + "H", page, 22)[0]
            if used + _PAGE_HEADER > self.size or total + used > length:
                raise BerkeleyError(f"overflow page {number} holds {used} bytes, too many")
            chunks.append(page[_PAGE_HEADER : _PAGE_HEADER + used])
            total += used
            number = struct.unpack_from(self.order + "I", page, 16)[0]
        return b"".join(chunks)

    def item(self, page: bytes, start: int, end: int) -> bytes:
        if not _PAGE_HEADER <= start < end <= self.size:
            raise BerkeleyError(f"item at {start}..{end} outside its page")
        if page[start] == _KEYDATA:
            return page[start + 1 : end]
        if page[start] == _OFFPAGE and end - start == 12:
            first, length = struct.unpack_from(self.order + "II", page, start + 4)
            return self.overflow(first, length)
        raise BerkeleyError(f"item of unknown type {page[start]}")


def berkeley_hash_values(data: bytes, where: str) -> tuple[list[bytes], list[str]]:
    """Every (key, value) pair's value, and the problems met: a hash page that cannot be
    read is named and skipped."""
    order = berkeley_order(data)
    if order is None:
        raise BerkeleyError(f"{where}: not a BerkeleyDB hash database")
    try:
        pages = _Pages(data, order)
    except BerkeleyError as error:
        raise BerkeleyError(f"{where}: {error}") from None
    except struct.error:
        raise BerkeleyError(f"{where}: truncated BerkeleyDB metadata page") from None
    values: list[bytes] = []
    problems: list[str] = []
    for number in range(1, pages.last + 1):
        page = pages.page(number)
        if page is None or page[25] not in _HASH_PAGES:
            continue
        count = struct.unpack_from(order + "H", page, 20)[0]
        count = min(count, (pages.size - _PAGE_HEADER) // 2)
        offsets = struct.unpack_from(f"{order}{count}H", page, _PAGE_HEADER)
        try:
            for index in range(0, count - 1, 2):
                key_start, value_start = offsets[index], offsets[index + 1]
                key_end = pages.size if index == 0 else offsets[index - 1]
                pages.item(page, key_start, key_end)  # checked, not used: rpm's instance number
                values.append(pages.item(page, value_start, key_start))
        except BerkeleyError as error:
            problems.append(f"{where}: page {number}: {error}")
    return values, problems
