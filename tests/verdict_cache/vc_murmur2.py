"""Kafka's Java default partitioner hash (murmur2), test-side only.

Producers use librdkafka's ``murmur2_random`` and franz-go's sticky key
partitioner; this lets the vectors pin the partition a key lands on, and the
integration test proves it against the real broker.
"""

from __future__ import annotations

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """The signed 32-bit murmur2 of ``data`` exactly as org.apache.kafka.common.utils.Utils.murmur2."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    tail = length & ~3
    rest = length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition(key: bytes, partitions: int) -> int:
    """Kafka's default partition for a keyed record: ``(murmur2(key) & 0x7fffffff) % n``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
