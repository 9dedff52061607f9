"""The soak's verdict, computed from what the world recorded (pure functions)."""

from __future__ import annotations

from collections import Counter
from statistics import median

__all__ = ["RSS_ALLOWED_KIB", "RSS_ALLOWED_RATIO", "id_problems", "rss_growth"]

RSS_ALLOWED_RATIO = 0.20
RSS_ALLOWED_KIB = 16 * 1024
WARM_UP_S = 10.0


def id_problems(
    injected: dict[str, str],
    arrived: dict[str, dict[str, set[str]]],
    dead_ids: dict[str, dict[str, str]],
) -> list[str]:
    """Mails that arrived (or died) under an id other than the one derived from them."""
    found = []
    for subject, expected in injected.items():
        for sink, seen in arrived.items():
            ids = seen.get(subject, set()) | (
                {dead_ids[sink][subject]} if subject in dead_ids[sink] else set()
            )
            if ids - {expected}:
                found.append(f"{sink}:{subject}")
    return found


def rss_growth(samples: list[tuple[int, float, int]]) -> dict[str, float | int | None]:
    """Over the bridge's longest life (after a warm-up): RSS early, late, and the growth."""
    lives: dict[int, list[tuple[float, int]]] = {}
    for life, t, kib in samples:
        lives.setdefault(life, []).append((t, kib))
    if not lives:
        return {"life_s": 0, "early_kib": None, "late_kib": None, "growth_kib": None}
    longest = max(lives.values(), key=lambda s: s[-1][0] - s[0][0])
    start = longest[0][0]
    settled = [kib for t, kib in longest if t - start >= WARM_UP_S] or [k for _, k in longest]
    third = max(len(settled) // 3, 1)
    early, late = median(settled[:third]), median(settled[-third:])
    return {
        "life_s": round(longest[-1][0] - start, 1),
        "samples": len(settled),
        "early_kib": int(early),
        "late_kib": int(late),
        "growth_kib": int(late - early),
    }


def rss_flat(growth: dict[str, float | int | None]) -> bool:
    """Whether the growth is within max(20%, 16 MiB) of the early RSS."""
    early, grew = growth.get("early_kib"), growth.get("growth_kib")
    if early is None or grew is None:
        return True
    return grew <= max(RSS_ALLOWED_RATIO * early, RSS_ALLOWED_KIB)


def count_repeats(arrived_counts: Counter[str]) -> int:
    """Deliveries beyond the first of each id (at-least-once repeats; allowed)."""
    return sum(n - 1 for n in arrived_counts.values() if n > 1)
