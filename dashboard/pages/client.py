"""Client investigation: what one client queried, malicious and uncertain first."""

from __future__ import annotations

import ipaddress

import streamlit as st

from dnsentinel.dashboard import alerts, data, guard, ui
from dnsentinel.dashboard.store import BLOCKED_DECISIONS, client_filter
from dnsentinel.verdict_cache.es_schema import index_name

guard.page_actor()
st.title("Client investigation")
raw = st.text_input("Client address", key="cl_addr", placeholder="192.0.2.10",
                    value=st.query_params.get("client", ""))
rng, granularity, _ = ui.time_range_picker("cl", default="Last 24 hours")
if not raw.strip() or rng is None:
    st.stop()
try:
    client = str(ipaddress.ip_address(raw.strip()))
except ValueError:
    st.error(f"{raw.strip()!r} is not an IPv4 or IPv6 address.")
    st.stop()
st.query_params["client"] = client

try:
    timeline = data.fetch("timeline", rng, granularity, client_filter(client))
    result = data.fetch("client_names", client, rng)
except Exception as exc:
    ui.service_error(f"activity of {client}", exc)
    st.stop()

rows = result.rows
cols = st.columns(4)
cols[0].metric("Queries", f"{int(timeline['queries'].sum()) if not timeline.empty else 0:,}")
cols[1].metric("Distinct names", f"{result.total:,}")
cols[2].metric("Malicious names", f"{int(rows['decision'].isin(BLOCKED_DECISIONS).sum()) if not rows.empty else 0:,}")
cols[3].metric("Uncertain names", f"{int((rows['decision'] == 'uncertain').sum()) if not rows.empty else 0:,}")
try:
    store = data.store()
    host_alerts = alerts.list_alerts(store.es, index_name("alerts", prefix=store.prefix), 50,
                                     since_ms=int(rng.start.timestamp() * 1000),
                                     until_ms=int(rng.end.timestamp() * 1000), client=client)
except Exception as exc:
    ui.service_error(f"alerts of {client}", exc)
    host_alerts = []
if host_alerts:
    st.subheader(f"Alerts ({len(host_alerts)})")
    for a in host_alerts:
        st.warning(f"**{a.severity} {a.kind}** ({a.status}): {a.summary}")
    ui.page_link("alerts", "🚨 All alerts")
st.subheader(f"Queries per {granularity}")
ui.timeline_chart(timeline, height=250)
st.subheader("Names queried (malicious and uncertain first)")
if result.total > len(rows):
    st.caption(f"Showing the {len(rows):,} busiest of {result.total:,} names.")
st.dataframe(ui.highlight_uncertain(rows), hide_index=True, width="stretch")
