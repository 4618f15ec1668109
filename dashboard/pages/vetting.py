"""Vetting: the uncertain queue, bulk allow / block / honeypot with a note, and undo."""

from __future__ import annotations

import streamlit as st

from dnsentinel.dashboard import actions, data, guard, ui, vetting
from dnsentinel.dashboard.access import Forbidden, allows
from dnsentinel.dashboard.store import VETTING_SORTS

PAGE_SIZE = 50


def _finish(msgs: list[tuple[str, str]]) -> None:
    """Reload the queue after a write; messages survive the rerun, the selection is cleared."""
    st.session_state["vet_msgs"] = msgs
    st.session_state["vet_gen"] = st.session_state.get("vet_gen", 0) + 1
    data.clear()
    st.rerun()

actor = guard.page_actor()
st.title("Vetting")
st.caption("Uncertain names (scored between the model's allow and block thresholds). "
           "A decision reaches the DNS path within a second and is written to the audit index.")
if not allows(actor.role, "vet"):  # the controls stay: a click is refused (and audited) by actions.vet
    st.info(guard.refusal(actor, "vet"))

for kind, text in st.session_state.pop("vet_msgs", []):
    getattr(st, kind)(text)
gen = st.session_state.setdefault("vet_gen", 0)

c1, c2, c3 = st.columns([2, 1, 1])
sort = c1.selectbox("Sort by", list(VETTING_SORTS), key="vet_sort")
descending = c2.toggle("Descending", value=True, key="vet_desc")
page = int(c3.number_input("Page", min_value=1, value=1, key="vet_page")) - 1

try:
    queue = data.fetch_live("vetting_queue", sort, descending, page, PAGE_SIZE)
except Exception as exc:
    ui.service_error("the vetting queue", exc)
    st.stop()

st.caption(f"{queue.total:,} names awaiting a decision; page {page + 1} of {max(1, -(-queue.total // PAGE_SIZE)):,}")
st.dataframe(queue.rows, hide_index=True, width="stretch",
             column_config={"score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0, format="%.4f")})

names = queue.rows["name"].tolist() if not queue.rows.empty else []
everything = st.checkbox("Select every name on this page", key="vet_all")
typed = st.text_input("…or a name that is not in the queue", key="vet_extra", placeholder="bad.example")
selected = st.multiselect("Selected names", names, default=names if everything else [], key=f"vet_sel_{everything}_{gen}")
if typed.strip():
    extra = ui.valid_name(typed)
    if extra is not None:
        selected = [*selected, extra.name]

with st.form("vet_form", clear_on_submit=True):
    action = st.radio("Decision", vetting.ACTIONS, horizontal=True, key="vet_action")
    note = st.text_input("Note (optional)", max_chars=vetting.MAX_NOTE, key="vet_note")
    submitted = st.form_submit_button(f"Apply to {len(selected)} selected", key="vet_apply")

if submitted:
    if not selected:
        st.warning("Select at least one name first.")
    else:
        try:
            done = actions.vet(actor, data.verdict_cache(), data.store(), selected, action, note)
        except Forbidden as exc:
            st.error(f"Refused: {exc}")
        except Exception as exc:
            ui.service_error("the decision", exc)
        else:
            st.session_state["vet_last"] = done
            msgs = [("error", f"{name}: not vetted ({reason})") for name, reason in done.failed.items()]
            if done.before:
                msgs.append(("success", f"{action} applied to {len(done.before)} name(s) by {actor.name}."))
            _finish(msgs)

last = st.session_state.get("vet_last")
if last is not None and last.before:
    st.info(f"Last action: **{last.action}** on {len(last.before)} name(s): {', '.join(list(last.before)[:10])}"
            + ("…" if len(last.before) > 10 else ""))
    if st.button("Undo last action", key="vet_undo"):
        try:
            failed = actions.undo_vet(actor, data.verdict_cache(), data.store(), last)
        except Forbidden as exc:
            st.error(f"Refused: {exc}")
        except Exception as exc:
            ui.service_error("the undo", exc)
        else:
            st.session_state["vet_last"] = None
            _finish([("error", f"{name}: not restored ({reason})") for name, reason in failed.items()]
                    + [("success", "Undone.")])
