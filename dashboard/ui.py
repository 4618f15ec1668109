"""Widgets and guards shared by the pages."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import streamlit as st

from dnsentinel.dashboard.timerange import (
    GRANULARITIES, MAX_BUCKETS, PRESETS, TimeRange, auto_granularity, bucket_count, last,
)
from dnsentinel.settings import get_settings
from dnsentinel.verdict_cache.vocabulary import BLOCKING_DECISIONS

CATEGORY_COLORS = {"blocked": "#d62728", "uncertain": "#ff7f0e", "allowed": "#2ca02c"}
DECISION_COLORS = {"malicious": "#d62728", "block": "#9e1b1b", "honeypot": "#7b3294", "uncertain": "#ff7f0e",
                   "benign": "#2ca02c", "allow": "#1a7a1a", "unscored": "#c7c7c7", "unknown": "#9e9e9e"}


def timeline_chart(timeline, height: int = 300) -> None:
    """Stacked bars per interval, blocked red, uncertain orange, allowed green."""
    wide = timeline.pivot_table(index="time", columns="category", values="queries", aggfunc="sum", fill_value=0)
    wide = wide.reindex(columns=list(CATEGORY_COLORS), fill_value=0).reset_index()
    st.bar_chart(wide, x="time", y=list(CATEGORY_COLORS), color=list(CATEGORY_COLORS.values()), height=height)


def names_chart(top, height: int = 480) -> None:
    """Horizontal bars of the top names, coloured by decision (uncertain stands out in orange)."""
    import altair as alt

    chart = alt.Chart(top).mark_bar().encode(
        x=alt.X("queries:Q", title="queries"),
        y=alt.Y("name:N", sort="-x", title=None, axis=alt.Axis(labelLimit=260)),
        color=alt.Color("decision:N", scale=alt.Scale(domain=list(DECISION_COLORS), range=list(DECISION_COLORS.values()))),
        tooltip=["name", "queries", "blocked", "decision"],
    ).properties(height=height)
    st.altair_chart(chart, width="stretch")


def curve_chart(frame, height: int = 250) -> None:
    """Training curves with a point per epoch (visible from the first epoch on)."""
    import altair as alt

    chart = alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)), y=alt.Y("value:Q", title=None), color="series:N",
        tooltip=["epoch", "series", "value"]).properties(height=height)
    st.altair_chart(chart, width="stretch")


def time_range_picker(key: str, default: str = "Last 24 hours") -> tuple[TimeRange | None, str, str]:
    """Sidebar-free picker: preset or custom range, and a granularity (auto unless overridden).

    Returns ``(range, granularity, preset)``; range is None (with an error shown) when a
    custom range is invalid. Relative presets are re-evaluated on each call, so a
    fragment that calls :func:`resolve` later sees the moving window.
    """
    cols = st.columns([2, 3, 1.5])
    options = [*PRESETS, "Custom"]
    preset = cols[0].selectbox("Time range", options, index=options.index(default), key=f"{key}_preset")
    if preset == "Custom":
        today = datetime.now(UTC).date()
        picked = cols[1].date_input("From / to (UTC days)", (today - timedelta(days=1), today), key=f"{key}_days")
        if not isinstance(picked, (tuple, list)) or len(picked) != 2:
            st.info("Pick both a start and an end day.")
            return None, "hour", preset
        rng = TimeRange(datetime.combine(picked[0], time.min, UTC),
                        datetime.combine(picked[1], time.min, UTC) + timedelta(days=1))
    else:
        rng = last(PRESETS[preset])
        cols[1].caption(f"{rng.start:%Y-%m-%d %H:%M} → {rng.end:%Y-%m-%d %H:%M} UTC")
    auto = auto_granularity(rng.span)
    choice = cols[2].selectbox("Granularity", [f"auto ({auto})", *GRANULARITIES], key=f"{key}_gran")
    granularity = auto if choice.startswith("auto") else choice
    if bucket_count(rng.span, granularity) > MAX_BUCKETS:
        st.warning(f"{granularity} buckets over this range would be {bucket_count(rng.span, granularity):,} bars; using {auto}.")
        granularity = auto
    return rng, granularity, preset


def resolve(rng: TimeRange, preset: str) -> TimeRange:
    """The same relative window as of now (for auto-refreshing fragments)."""
    return last(PRESETS[preset]) if preset in PRESETS else rng


def service_error(what: str, exc: Exception) -> None:
    """One plain line instead of a traceback when a service is down or refuses."""
    st.error(f"Could not load {what}: {type(exc).__name__}: {str(exc)[:300]}")


def highlight_uncertain(df):
    """Styler that tints uncertain rows orange and blocked ones red."""
    def row_style(row):
        decision = row.get("decision", "")
        color = ("#ffe8cc" if decision == "uncertain" else
                 "#ffd6d6" if decision in BLOCKING_DECISIONS else "")
        return [f"background-color: {color}" if color else ""] * len(row)
    return df.style.apply(row_style, axis=1)


def settings():
    return get_settings()


def last_update() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")


def valid_name(raw: str):
    """The normalized name (SPEC §1), or None with the reason shown."""
    from dnsentinel.verdict_cache.names import InvalidName, normalize

    try:
        return normalize(raw.strip())
    except InvalidName as exc:
        st.error(f"{raw.strip()!r} is not a valid DNS name: {exc.reason} ({exc.detail})")
        return None


def threshold(thresholds, key: str) -> str:
    """A model threshold (dict or object) as text."""
    value = thresholds.get(key) if isinstance(thresholds, dict) else getattr(thresholds, key, None)
    return "?" if value is None else f"{value:.3f}"


def page_link(page: str, label: str, **params: str) -> None:
    """A markdown link to another page (``client``, ``domain``, ``alerts``) with its query parameters.

    ``st.page_link`` needs the page registered in this run's navigation, which a page run on its
    own (tests, deep links before login) does not have; a relative URL works everywhere.
    """
    from urllib.parse import urlencode

    st.markdown(f"[{label}]({page}{'?' + urlencode(params) if params else ''})")
