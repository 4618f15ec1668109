"""Overview: traffic split by decision, top names, top and likely infected clients."""

from __future__ import annotations

import streamlit as st

from dnsentinel.dashboard import data, guard, ui
from dnsentinel.dashboard.store import ALLOWED_DECISIONS, BLOCKED_DECISIONS

guard.page_actor()
st.title("Overview")
rng, granularity, preset = ui.time_range_picker("ov")
refresh = st.sidebar.selectbox("Auto-refresh", ["off", "10 s", "30 s", "60 s"], index=2, key="ov_refresh")
run_every = None if refresh == "off" else int(refresh.split()[0])


def names_block(title: str, decisions: tuple[str, ...], key: str, rng, top) -> None:
    """Top-20 bar chart, or (toggle) the full searchable, sortable, paginated table."""
    st.subheader(title)
    if not st.toggle("Full table", key=f"{key}_full"):
        if top.empty:
            st.caption("No queries in this range.")
            return
        ui.names_chart(top)
        if (top["decision"] == "uncertain").any():
            st.caption("🟧 uncertain names (low confidence) are highlighted: they await vetting.")
        return
    c1, c2, c3, c4 = st.columns([3, 2, 1, 1])
    search = c1.text_input("Search names", key=f"{key}_q")
    sort = c2.selectbox("Sort by", ["queries", "name"], key=f"{key}_sort")
    descending = c3.toggle("Descending", value=True, key=f"{key}_desc")
    page = int(c4.number_input("Page", min_value=1, value=1, key=f"{key}_page")) - 1
    result = data.fetch("names_table", rng, decisions, search, sort, descending, page, 50)
    st.caption(f"{result.total:,} names match; page {page + 1} of {max(1, -(-result.total // 50)):,}")
    st.dataframe(ui.highlight_uncertain(result.rows), hide_index=True, width="stretch")


@st.fragment(run_every=run_every)
def live() -> None:
    """Everything that auto-refreshes; relative ranges move with the clock."""
    current = ui.resolve(rng, preset)
    try:
        ov = data.fetch("overview", current, granularity)
        timeline = ov["timeline"]
        st.subheader(f"Queries per {granularity}")
        if timeline.empty or timeline["queries"].sum() == 0:
            st.info("No activity in this range yet.")
        else:
            totals = timeline.groupby("category")["queries"].sum()
            cols = st.columns(4)
            cols[0].metric("Queries", f"{int(totals.sum()):,}")
            for col, cat in zip(cols[1:], ("blocked", "uncertain", "allowed")):
                col.metric(cat.capitalize(), f"{int(totals.get(cat, 0)):,}")
            ui.timeline_chart(timeline)
        left, right = st.columns(2)
        with left:
            names_block("Top 20 malicious names", BLOCKED_DECISIONS, "mal", current, ov["malicious"])
        with right:
            names_block("Top 20 benign names (uncertain highlighted)", ALLOWED_DECISIONS, "ben", current, ov["benign"])
        left, right = st.columns(2)
        with left:
            st.subheader("Top clients")
            st.dataframe(ov["clients"], hide_index=True, width="stretch")
        with right:
            st.subheader("Likely infected hosts")
            st.caption("Clients that queried malicious or blocked names.")
            st.dataframe(ov["infected"], hide_index=True, width="stretch")
        st.caption(f"Updated {ui.last_update()} UTC" + (f"; refreshes every {run_every} s" if run_every else ""))
    except Exception as exc:  # ES down or index missing: say so, keep the page
        ui.service_error("the overview", exc)


if rng is not None:
    live()
